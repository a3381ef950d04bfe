"""One `plan2flow up` server per backend for the session (the `local` fixture of conftest.py):
a real Prefect server, its UI, a process work pool and its worker. The tests that use it run in
one xdist worker (their group is the backend), and every test deploys plans of its own names."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect_db import seed
from support import free_port, need_service
from typer.testing import CliRunner

from plan2flow.cli import app

PLAN = """\
apiVersion: plan2flow/v1
kind: Plan
metadata:
  name: greetings
  description: Greet someone, then count the bytes.
params:
  who: {type: string, default: world, description: Who to greet.}
  times: {type: integer, default: 1}
schedule:
  cron: "0 3 * * *"
  timezone: Europe/Berlin
tasks:
  - id: greet
    type: shell
    params: {argv: ['echo "Hello, ${{ params.who }}!" > "${{ outputs.greeting }}"'], shell: true}
    outputs: [greeting]
  - id: count
    type: shell
    params: {argv: [wc, -c, "${{ inputs.text }}"]}
    inputs: {text: greet.greeting}
  - {id: done, type: noop, depends_on: [count]}
"""
TASK_IDS = {"greet", "count", "done"}
BUSY_SECONDS = 240.0


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


def invoke(env: dict[str, str | None], *args: str) -> Any:
    """`plan2flow ARGS` in this process with `env`; an exception other than an exit is raised."""
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@dataclass
class Local:
    """A server started by `plan2flow up --detach`, and what its commands need."""

    home: Path
    api: str
    ui: str
    env: dict[str, str | None]

    def plan(self, name: str, text: str = PLAN) -> Path:
        """A plan file of this name (and deployment `<name>/<name>`), in a folder of its own."""
        path = self.home.parent / f"plans-{self.home.name}" / name / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("name: greetings", f"name: {name}", 1), encoding="utf-8")
        return path

    def cli(self, *args: str) -> Any:
        return invoke(self.env, *args)

    def get(self, path: str) -> Any:
        """A read, asked again while the server is too busy to answer in 30 s (a SQLite server
        on two loaded cores has been), within BUSY_SECONDS."""
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            try:
                response = httpx.get(f"{self.api}{path}", timeout=30)
            except httpx.TimeoutException:
                if time.monotonic() > deadline:
                    raise
                continue
            response.raise_for_status()
            return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(f"{self.api}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()


@contextmanager
def _environment_kept() -> Iterator[None]:
    """`up` and `down` set Prefect defaults in this process's environment: undo them."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class UpServers:
    """The session's `plan2flow up` servers, one per backend, started when a test asks for one
    and stopped when the tests that use it are done (`stop`): an idle server whose worker polls
    every second costs about 3 s of CPU a minute."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, prefect_db: Path) -> None:
        self._factory = tmp_path_factory
        self._prefect_db = prefect_db
        self._running: dict[str, tuple[Local, str | None]] = {}

    def get(self, backend: str) -> Local:
        if backend not in self._running:
            self._running[backend] = self._start(backend)
        return self._running[backend][0]

    def stop(self, backend: str | None = None) -> None:
        """Stop the server of `backend`, or every one."""
        for name in [backend] if backend else list(self._running):
            if name in self._running:
                server, database = self._running.pop(name)
                with _environment_kept():
                    CliRunner().invoke(app, ["down"], env=server.env)
                if database:
                    _drop(database)

    def _start(self, backend: str) -> tuple[Local, str | None]:
        database: str | None = None
        if backend == "postgresql":
            need_service(postgres_available(), "PostgreSQL is not running on 127.0.0.1:5432")
            database = f"plan2flow_test_{uuid.uuid4().hex[:8]}"
            _postgres(f'CREATE DATABASE "{database}"')
        home = self._factory.mktemp(f"home-{backend}")
        if database is None:
            seed(home / "prefect", self._prefect_db)
        env: dict[str, str | None] = {
            "PLAN2FLOW_HOME": str(home),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_API_URL": None,
        }
        port = free_port()
        args = ["up", "--detach", "--port", str(port), "--pool", "plan2flow-test"]
        if database:
            args += ["--database-url", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"]
        server = Local(home, f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}", env)
        with _environment_kept():
            result = CliRunner().invoke(app, args, env=env)
        if result.exit_code != 0:
            with _environment_kept():
                CliRunner().invoke(app, ["down"], env=env)
            if database:
                _drop(database)
            raise AssertionError(result.output)
        return server, database


def _postgres(statement: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(statement)


def _drop(database: str) -> None:
    _postgres(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
