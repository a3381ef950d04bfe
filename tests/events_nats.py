"""NATS for the event bus tests: the machine's server (127.0.0.1:4222), or servers of a test's
own on free loopback ports with their own store directories, stopped at the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import need_service

from plan2flow.events.jetstream import NatsSettings

SHARED_URL = os.environ.get("PLAN2FLOW_TEST_NATS_URL", "nats://127.0.0.1:4222")
BINARY = shutil.which("nats-server") or "/usr/sbin/nats-server"


def reachable(url: str) -> bool:
    host, _, port = url.removeprefix("nats://").partition(":")
    try:
        with socket.create_connection((host, int(port or 4222)), timeout=1):
            return True
    except OSError:
        return False


def need_shared_nats() -> str:
    need_service(reachable(SHARED_URL), f"no NATS server with JetStream at {SHARED_URL}")
    return SHARED_URL


def need_binary() -> str:
    need_service(Path(BINARY).exists(), f"no nats-server binary ({BINARY}) for the fault tests")
    return BINARY


PORTS_PER_WORKER = 1000
FIRST_PORT = 20000
"""Below the kernel's ephemeral ports (32768 and up here): no process gets one by binding 0."""


def free_port() -> int:
    """A free loopback port for a nats-server, from a block of this xdist worker's own below the
    kernel's ephemeral range. A port a test's killed server leaves can then be taken only by a
    later server of the same worker, never by another worker's or by any process that asks the
    kernel for a port, which a bus reconnecting to the killed server's address would reach."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    first = FIRST_PORT + PORTS_PER_WORKER * (index % 10)
    for port in random.sample(range(first, first + PORTS_PER_WORKER), PORTS_PER_WORKER):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{first + PORTS_PER_WORKER - 1}")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def private_settings(url: str, spool: Path, **changes: object) -> NatsSettings:
    """Settings of streams and subjects no other test uses."""
    tag = uuid.uuid4().hex[:10]
    base = NatsSettings(
        servers=(url,),
        root=f"t{tag}",
        stream=f"EV_{tag}",
        dlq_stream=f"DLQ_{tag}",
        advisory_stream=f"ADV_{tag}",
        spool_dir=spool,
        publish_timeout=2.0,
        connect_timeout=2.0,
    )
    return base.with_(**changes)


def delete_streams(settings: NatsSettings) -> None:
    async def main() -> None:
        import nats

        with contextlib.suppress(Exception):
            nc = await asyncio.wait_for(nats.connect(list(settings.servers)), 3)
            js = nc.jetstream()
            for name in (settings.stream, settings.dlq_stream, settings.advisory_stream):
                with contextlib.suppress(Exception):
                    await js.delete_stream(name)
            await nc.close()

    asyncio.run(main())


@dataclass
class Server:
    """One nats-server process of a test's own."""

    store: Path
    port: int = field(default_factory=free_port)
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    name: str = "n"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> Server:
        argv = [
            need_binary(),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store),
        ]
        argv += ["-n", self.name]
        if self.cluster_port is not None:
            argv += ["--cluster_name", "p2f", "--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
            argv += ["--routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        self.store.mkdir(parents=True, exist_ok=True)
        log = open(self.store.parent / f"{self.name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_until(lambda: reachable(self.url), 20, f"nats-server {self.name} on {self.port}")
        return self

    def kill(self) -> None:
        """kill -9, and wait for the process to be gone."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Proxy:
    """A TCP relay between NATS clients and a server that a test can hold (what clients send is
    no longer passed on, so it piles up in their buffers) and cut (every connection broken, what
    it held dropped), while the server stays up. New connections are relayed at once."""

    def __init__(self, port: int) -> None:
        self.target = port
        self._listener = socket.socket()
        # A small receive window: what a held client sends stays in the client's own buffers.
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self.port = int(self._listener.getsockname()[1])
        self._passing = threading.Event()
        self._passing.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="nats-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                return
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            for source, sink, held in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._relay, args=(source, sink, held), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket, held: bool) -> None:
        with contextlib.suppress(OSError):
            while True:
                if held:
                    self._passing.wait()
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.close()

    def hold(self) -> None:
        self._passing.clear()

    def cut(self) -> None:
        """Break every connection, then relay again."""
        with self._lock:
            ends, self._sockets = self._sockets, []
        for end in ends:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        self._passing.set()

    def close(self) -> None:
        self._listener.close()
        self.cut()


@contextlib.contextmanager
def own_server(directory: Path) -> Iterator[Server]:
    server = Server(directory / "store").start()
    try:
        yield server
    finally:
        server.kill()


@contextlib.contextmanager
def own_cluster(directory: Path, size: int = 3) -> Iterator[list[Server]]:
    cluster_ports = [free_port() for _ in range(size)]
    servers = [
        Server(
            directory / f"n{i}",
            cluster_port=cluster_ports[i],
            routes=[p for j, p in enumerate(cluster_ports) if j != i],
            name=f"n{i}",
        )
        for i in range(size)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[NatsSettings]:
    """Settings of private streams on the machine's NATS server, deleted afterwards."""
    settings = private_settings(need_shared_nats(), tmp_path / "spool")
    yield settings
    delete_streams(settings)
