"""``plan2flow up`` and ``down``: a local Prefect server, a process work pool and its worker.

The server keeps its database (SQLite by default) under the plan2flow home, so a machine needs no
set-up; ``--database-url`` points it at PostgreSQL instead. The server and the worker run in
sessions of their own, so a Ctrl-C in the terminal reaches ``up`` alone, which then stops the
worker before the server (a worker whose server is gone ignores SIGTERM for many seconds).
A state file records what runs, so ``down``, ``deploy``, ``runs`` and ``trigger`` find it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from plan2flow.compiler import write_all_atomic
from plan2flow.home import plan2flow_home

from .errors import OperationError

DEFAULT_POOL = "plan2flow"
DEFAULT_PORT = 4200
STATE_FILE = "server.json"

# The server records task runs from events; with its default batch sizes it records about 50
# task runs per second and drops events once a burst overflows its in-memory queue.
LARGE_PLAN_SETTINGS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TRIGGERS_READ_BATCH_SIZE": "200",
}
QUIET_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
}


class ServerError(OperationError):
    """The local server cannot be started, found or stopped (exit status 2)."""


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """What ``plan2flow up`` starts."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    pool: str = DEFAULT_POOL
    database_url: str | None = None
    worker: bool = True


@dataclasses.dataclass(frozen=True)
class LocalServer:
    """A running server and worker, as the state file records them."""

    api_url: str
    ui_url: str
    pool: str
    server_pid: int
    worker_pid: int | None
    database: str
    logs: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LocalServer:
        data = json.loads(text)
        data["logs"] = tuple(data.get("logs", ()))
        return cls(**data)


def redact(database_url: str) -> str:
    """A database URL without its password, fit for printing."""
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def prefect_executable() -> str:
    """The `prefect` command of this interpreter's environment."""
    beside = Path(sys.executable).parent / "prefect"
    if beside.exists():
        return str(beside)
    found = shutil.which("prefect")
    if found is None:  # pragma: no cover - prefect is a dependency
        raise ServerError("the `prefect` command is not installed")
    return found


def server_environment(home: Path, config: ServerConfig, api_url: str) -> dict[str, str]:
    """The server's environment: state under the home, no telemetry, large-plan batches.

    The UI finds the API through PREFECT_UI_API_URL, which otherwise points at port 4200
    whatever port the server listens on."""
    env = {**os.environ, **QUIET_SETTINGS, **LARGE_PLAN_SETTINGS}
    env["PREFECT_HOME"] = str(home / "prefect")
    env.pop("PREFECT_API_URL", None)
    env.setdefault("PREFECT_UI_API_URL", api_url)
    if config.database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = config.database_url
    return env


def worker_environment(home: Path, api_url: str) -> dict[str, str]:
    """The worker's environment: flows it starts find the server, the home and the results."""
    env = {**os.environ, **QUIET_SETTINGS}
    env.update(
        {
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(home / "prefect"),
            "PLAN2FLOW_HOME": str(home),
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "results"),
        }
    )
    return env


def state_path(home: Path | None = None) -> Path:
    return (home or plan2flow_home()) / STATE_FILE


def _is_prefect_process(pid: int) -> bool:
    """Whether `pid` is alive and still one of the processes `up` started (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # pragma: no cover - no procfs (macOS): trust the pid
        return True
    return b"prefect" in cmdline.read_bytes()


def running(home: Path | None = None) -> LocalServer | None:
    """The local server recorded in the home, if its server process is still alive."""
    path = state_path(home)
    try:
        state = LocalServer.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return state if _is_prefect_process(state.server_pid) else None


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


def _exited(pid: int) -> bool:
    """Whether a child has exited (and reap it); a process that is not our child: whether gone."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not _is_prefect_process(pid)
    return reaped == pid


def _wait_until(
    ready: Callable[[], bool], pid: int, log: Path, timeout: float, what: str, goal: str
) -> None:
    """Poll `ready` until it holds; fail early, with the log's tail, if `pid` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):  # not listening yet: ask again
            if ready():
                return
        if _exited(pid):
            raise ServerError(f"{what} exited at start; its log ends:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise ServerError(f"{what} was not {goal} after {timeout:.0f} s ({log})")
        time.sleep(0.25)


def _wait_healthy(api_url: str, pid: int, log: Path, timeout: float) -> None:
    def healthy() -> bool:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200

    _wait_until(healthy, pid, log, timeout, "the Prefect server", "healthy")


@contextmanager
def api_settings(api_url: str) -> Iterator[None]:
    """Point this process's Prefect client at `api_url` for the duration."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


def ensure_work_pool(name: str) -> str:
    """Create the `process` work pool unless it exists; return what happened."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=ProcessWorker.type,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="Runs plan2flow deployments as local processes.",
                )
            )
            return "created"
        if pool.type != ProcessWorker.type:
            raise ServerError(f"work pool {name!r} exists with type {pool.type!r}, not 'process'")
        return "exists"


def _wait_worker_online(
    api_url: str, pool: str, name: str, pid: int, log: Path, timeout: float
) -> None:
    """Wait for this worker's first heartbeat: the pool alone may still look ready from the
    heartbeats of a worker that an earlier `up` started and `down` stopped."""
    query = {"workers": {"status": {"any_": ["ONLINE"]}}, "limit": 200, "offset": 0}

    def online() -> bool:
        response = httpx.post(f"{api_url}/work_pools/{pool}/workers/filter", json=query, timeout=10)
        return response.is_success and any(w["name"] == name for w in response.json())

    _wait_until(online, pid, log, timeout, "the worker", "online")


def _spawn(argv: list[str], env: Mapping[str, str], log: Path) -> int:
    """Start a process in a session of its own, output appended to `log`; return its pid.

    posix_spawn rather than Popen: with `--detach` the processes outlive this one, and a Popen
    object would warn that its process is still running when it is collected.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    return os.posix_spawn(
        argv[0],
        argv,
        dict(env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )


def start(
    config: ServerConfig,
    home: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
    timeout: float = 120,
) -> tuple[LocalServer, list[int]]:
    """Start the server, the work pool, the worker and the agent blocks; record the state.

    Everything started is stopped again when a later step fails, so a failed `up` leaves nothing.
    """
    home = home or plan2flow_home()
    existing = running(home)
    if existing is not None:
        raise ServerError(
            f"a plan2flow server is already running at {existing.ui_url} "
            f"(pid {existing.server_pid}); stop it with `plan2flow down`"
        )
    if not _port_is_free(config.host, config.port):
        raise ServerError(
            f"port {config.port} on {config.host} is in use (another Prefect server?); "
            "choose another with --port"
        )
    address = "127.0.0.1" if config.host in {"0.0.0.0", "::"} else config.host
    api_url = f"http://{address}:{config.port}/api"
    ui_url = f"http://{address}:{config.port}"
    logs = home / "logs"
    server_log, worker_log = logs / "server.log", logs / "worker.log"
    prefect = prefect_executable()
    started: list[int] = []
    try:
        progress(f"starting the Prefect server on {ui_url} (log: {server_log})")
        server = _spawn(
            [prefect, "server", "start", "--host", config.host, "--port", str(config.port)],
            server_environment(home, config, api_url),
            server_log,
        )
        started.append(server)
        _wait_healthy(api_url, server, server_log, timeout)
        with api_settings(api_url):
            progress(f"work pool {config.pool!r}: {ensure_work_pool(config.pool)}")
            from plan2flow.agents.registry import register_all

            changes = register_all()
            progress(f"agent blocks: {len(changes)} registered")
            worker_pid = None
            if config.worker:
                progress(f"starting a process worker for {config.pool!r} (log: {worker_log})")
                name = f"plan2flow-{socket.gethostname()}-{secrets.token_hex(3)}"
                command = ["worker", "start", "--pool", config.pool, "--type", "process"]
                worker = _spawn(
                    [prefect, *command, "--name", name],
                    worker_environment(home, api_url),
                    worker_log,
                )
                started.insert(0, worker)
                worker_pid = worker
                _wait_worker_online(api_url, config.pool, name, worker, worker_log, timeout)
        database = redact(config.database_url) if config.database_url else "SQLite (plan2flow home)"
        state = LocalServer(
            api_url=api_url,
            ui_url=ui_url,
            pool=config.pool,
            server_pid=server,
            worker_pid=worker_pid,
            database=database,
            logs=(str(server_log), str(worker_log)),
        )
        write_all_atomic([(state_path(home), state.to_json())])
        return state, started
    except BaseException:
        for pid in started:
            _stop_pid(pid)
        raise


def _stop_pid(pid: int, grace: float = 20) -> bool:
    """SIGTERM the process group of `pid`, then SIGKILL after `grace` seconds; True if it ran."""
    if not _is_prefect_process(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:  # pragma: no cover - exited in between
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):  # pragma: no cover - it ignored SIGTERM
        os.killpg(pid, signal.SIGKILL)
    return True  # pragma: no cover


def stop(home: Path | None = None, progress: Callable[[str], None] = lambda _: None) -> bool:
    """Stop the recorded worker, then the server; False when nothing was running."""
    home = home or plan2flow_home()
    path = state_path(home)
    try:
        state = LocalServer.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return False
    stopped = False
    if state.worker_pid is not None and _stop_pid(state.worker_pid):
        progress(f"stopped the worker (pid {state.worker_pid})")
        stopped = True
    if _stop_pid(state.server_pid):
        progress(f"stopped the Prefect server (pid {state.server_pid})")
        stopped = True
    path.unlink(missing_ok=True)
    return stopped


def wait_until_interrupted(
    pids: list[int], ready: Callable[[], None] = lambda: None, home: Path | None = None
) -> int:
    """Run in the foreground until Ctrl-C or SIGTERM, then stop the worker and the server.

    `ready` is called once the signals are caught, so a Ctrl-C right after it is never lost.
    Returns 0 after a requested stop, 1 when the server or the worker died on its own.
    """
    requested: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        requested.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ready()
        died: list[int] = []
        while not requested and not died:
            died = [pid for pid in pids if _exited(pid)]
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stop(home)
    return 0 if requested and not died else 1


__all__ = [
    "DEFAULT_POOL",
    "DEFAULT_PORT",
    "LocalServer",
    "ServerConfig",
    "ServerError",
    "api_settings",
    "redact",
    "running",
    "start",
    "state_path",
    "stop",
    "wait_until_interrupted",
]
