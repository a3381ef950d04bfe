"""One Prefect API for a whole test session, shared by its pytest-xdist workers.

Each worker used to start a server of its own: four servers, each importing Prefect's server,
starting its services and idling through the session, cost about 25 s of CPU more than one
serving the same requests. The first worker to ask starts the server under a lock in the
session's directory (`serve`); the others read its address there. A worker may finish before
the others, so the server does not belong to one: a small supervisor (this file, run as a
script) keeps it and stops it when the session's pytest process says so (`stop`) or is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from prefect_db import SEEDED_SERVER_SETTINGS, seed

STARTUP_SECONDS = 120.0
STOP_SECONDS = 30.0
OWNER_POLL_SECONDS = 1.0
# Every flow run of every worker waits on this one process: on two busy cores it gets a larger
# share of the CPU than the workers and their subprocesses.
SERVER_NICENESS = -5
# The machine's PostgreSQL, where one runs (docs/development.md): a server shared by every
# worker's runs writes from many connections at once, which SQLite serializes behind a lock
# (a request once waited out SQLite's 60 s busy timeout with five workers).
POSTGRES = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432"
# Files in the session's directory: the address, the supervisor's pid, and a lock the
# supervisor holds for as long as it runs (`stop` waits for it).
ADDRESS, SUPERVISOR, ALIVE, STARTING = "api.url", "supervisor.pid", "alive.lock", "start.lock"


def serve(directory: Path, template: Path, owner: int, *, postgresql: bool = False) -> str:
    """The API URL of the server of `directory`, started by the first process to ask and kept
    until `owner` stops it or exits: on a new PostgreSQL database if `postgresql` and one is
    running, else on a copy of the migrated SQLite `template` (tests/prefect_db.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / STARTING).open("w") as starting:
        fcntl.flock(starting, fcntl.LOCK_EX)
        address = directory / ADDRESS
        if not address.exists():
            url = _start(directory, template, owner, postgresql)
            partial = address.with_suffix(".partial")
            partial.write_text(url, encoding="utf-8")
            os.replace(partial, address)
        return address.read_text(encoding="utf-8")


def stop(directory: Path) -> None:
    """Stop the server of `directory`, if one was started, and wait until it is gone."""
    try:
        pid = int((directory / SUPERVISOR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with (directory / ALIVE).open("a") as alive:
        deadline = time.monotonic() + STOP_SECONDS
        while True:
            try:
                fcntl.flock(alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    return
                time.sleep(0.1)


def _start(directory: Path, template: Path, owner: int, postgresql: bool) -> str:
    import httpx  # not in the supervisor, which runs this file

    database = _new_postgres_database() if postgresql else None
    home = directory / "home"
    env = {
        key: value
        for key, value in os.environ.items()
        # Not the clients' settings, and not SlipCover's switch (the server is not measured).
        if not key.startswith("PREFECT_API_") and key != "SLIPCOVER_ENABLED"
    }
    if database is None:
        seed(home, template)
        env.update(SEEDED_SERVER_SETTINGS)
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    else:  # migrated and given Prefect's block types by the server as it starts
        home.mkdir(parents=True, exist_ok=True)
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"{POSTGRES_URL}/{database}"
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # No test reads events back from this API (tests/prefect_events.py subscribes).
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
            # As Prefect's own temporary server (SubprocessASGIServer) runs.
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
    )
    from support import free_port  # not in the supervisor, which runs this file

    port = free_port()
    # Started by a launcher that exits at once: the supervisor is no child of this process,
    # which may end before it (an xdist worker whose tests are done) and would leave a zombie.
    subprocess.run(
        [sys.executable, __file__, "launch", str(owner), str(port), str(directory), database or ""],
        env=env,
        stdin=subprocess.DEVNULL,
        check=True,
        timeout=STARTUP_SECONDS,
    )
    supervisor = int((directory / SUPERVISOR).read_text(encoding="utf-8"))
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if not _alive(supervisor):
                raise RuntimeError("the Prefect API exited at start")
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    stop(directory)
    raise RuntimeError(f"the Prefect API did not answer within {STARTUP_SECONDS:.0f} s")


def _new_postgres_database() -> str | None:
    """A new, empty PostgreSQL database; None where PostgreSQL is not running."""
    import psycopg

    name = f"plan2flow_test_api_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    return name


def _drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _supervise(owner: int, port: int, alive: Path, database: str) -> int:
    """Run the server until SIGTERM, SIGINT, its own exit or the exit of `owner`; then drop
    its PostgreSQL `database`, if it has one."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with alive.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            stdin=subprocess.DEVNULL,
        )
        with contextlib.suppress(OSError):  # only a privileged user may raise a priority
            os.setpriority(os.PRIO_PROCESS, server.pid, SERVER_NICENESS)
        while not stopping.wait(OWNER_POLL_SECONDS):
            if server.poll() is not None or not _alive(owner):
                break
        server.terminate()
        try:
            server.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if database:
            _drop_postgres_database(database)
    return 0


def _launch(owner: str, port: str, directory: Path, database: str) -> int:
    """Start the supervisor and say its pid, without waiting for it."""
    supervisor = subprocess.Popen(
        [sys.executable, __file__, "supervise", owner, port, str(directory / ALIVE), database],
        stdin=subprocess.DEVNULL,
    )
    partial = directory / f"{SUPERVISOR}.partial"
    partial.write_text(str(supervisor.pid), encoding="utf-8")
    os.replace(partial, directory / SUPERVISOR)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "launch":
        sys.exit(_launch(sys.argv[2], sys.argv[3], Path(sys.argv[4]), sys.argv[5]))
    sys.exit(_supervise(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]))
