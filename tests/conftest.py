"""Shared fixtures: one real Prefect API for the session, isolated homes for every run."""

from __future__ import annotations

import functools
import inspect
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from plan2flow_up import Local, UpServers


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by the markers added here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need a Prefect API are `slow`. Under xdist (`--dist loadgroup`), the tests
    sharing one `plan2flow up` server per backend run in one worker, so that each server starts
    once; so do the tests that start and kill nats-servers of their own, and the tests of a
    module that use the same module-scoped fixtures (a Prefect server, a compiled set of
    plans): spread over workers, each would build them."""
    for item in items:
        if {"prefect_api", "own_prefect_api"} & set(getattr(item, "fixturenames", ())):
            # The session's Prefect API takes ~5 s to start: `make check` leaves it out.
            item.add_marker(pytest.mark.slow)
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("local") if callspec else None
        module = getattr(item, "module", None)
        if isinstance(backend, str):
            item.add_marker(pytest.mark.xdist_group(f"plan2flow-up-{backend}"))
        elif _starts_nats_servers(item):
            # They kill and restart servers while thousands of events are spooled, each written
            # with an fsync: side by side in three workers they slowed one another past their
            # deadlines (a full run failed three). One worker runs them, one at a time.
            item.add_marker(pytest.mark.xdist_group("private-nats-servers"))
        elif module is not None and (shared := _module_fixtures(item)):
            item.add_marker(pytest.mark.xdist_group(f"{module.__name__}:{','.join(shared)}"))


def _module_fixtures(item: pytest.Item) -> list[str]:
    """The module-scoped fixtures `item` uses: the tests using the same ones share a worker."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = getattr(info, "name2fixturedefs", {}) or {}
    return sorted(
        name
        for name, chain in definitions.items()
        if any(getattr(definition, "scope", None) == "module" for definition in chain)
    )


NATS_SERVER_STARTERS = re.compile(r"\b(own_server|own_cluster|Server)\(")


def _starts_nats_servers(item: pytest.Item) -> bool:
    """Whether a test starts nats-server processes of its own (tests/events_nats.py); the
    other tests of its module use the machine's server and run anywhere. A function's source
    is read only when its module's calls a starter at all (reading every test's took a second
    of each worker's collection), and once, not once per parametrized test."""
    module = getattr(item, "module", None)
    path = getattr(module, "__file__", None)
    return bool(
        path and _calls_a_starter(path) and _calls_a_starter(getattr(item, "function", None))
    )


@functools.cache
def _calls_a_starter(code: object) -> bool:
    """Whether the source of `code` (a function, or a module's file) calls a starter."""
    try:
        if isinstance(code, str):
            source = Path(code).read_text(encoding="utf-8")
        else:
            source = inspect.getsource(code) if code is not None else ""  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False
    return NATS_SERVER_STARTERS.search(source) is not None


@pytest.fixture(scope="session")
def prefect_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated Prefect database for the session, shared by the xdist workers: a server
    started on a copy (tests/prefect_db.py) skips 7 s of migrations."""
    from prefect_db import migrated_template

    return migrated_template(tmp_path_factory.getbasetemp().parent)


API_DIRECTORY = "PLAN2FLOW_TEST_API_DIRECTORY"
API_OWNER = "PLAN2FLOW_TEST_API_OWNER"


def pytest_configure(config: pytest.Config) -> None:
    """The session's pytest process (the xdist controller, or the only process) names the
    directory of the session's Prefect API before any worker starts: the workers inherit it
    in their environment and share the one server (tests/prefect_api_server.py)."""
    if not hasattr(config, "workerinput"):
        os.environ[API_DIRECTORY] = tempfile.mkdtemp(prefix="plan2flow-test-api-")
        os.environ[API_OWNER] = str(os.getpid())


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's process stops the session's Prefect API, once every worker is done."""
    if hasattr(config, "workerinput") or API_DIRECTORY not in os.environ:
        return
    from prefect_api_server import stop

    directory = Path(os.environ.pop(API_DIRECTORY))
    os.environ.pop(API_OWNER, None)
    stop(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_api(prefect_db: Path) -> Iterator[None]:
    """A real Prefect API for the whole session, one for every xdist worker.

    Started by the first worker that needs it (tests/prefect_api_server.py), on a new PostgreSQL
    database where PostgreSQL runs (every worker's runs write to it at once), else on a copy of
    the session's migrated SQLite database. The runs of the tests keep their logs: no test reads
    them from this API, and shipping them cost its server a third of its CPU time (200 task
    runs: 7.0 s of the server's CPU with them, 4.8 s without; the worker's own 1.7 s and 1.3 s).
    Only the test processes' settings change: the servers, workers and runs the tests start in
    subprocesses ship their logs as usual. Nor does this API persist events (a third of what it
    spent recording runs): a test that checks what reaches Prefect subscribes to its event
    stream (tests/prefect_events.py); the task run recorder still turns them into task runs.
    Every test names what it creates after itself: the other workers share the API."""
    from prefect_api_server import serve

    directory, owner = Path(os.environ[API_DIRECTORY]), int(os.environ[API_OWNER])
    with _using_api(serve(directory, prefect_db, owner, postgresql=True)):
        yield


@pytest.fixture(scope="module")
def own_prefect_api(tmp_path_factory: pytest.TempPathFactory, prefect_db: Path) -> Iterator[None]:
    """A Prefect API of the module's own, for tests that change what every run of the
    session's API would see (registering and unregistering agents' blocks), or look at what
    the migrated SQLite template holds: it runs on a copy of the template."""
    from prefect_api_server import serve, stop

    directory = tmp_path_factory.mktemp("own-prefect-api")
    try:
        with _using_api(serve(directory, prefect_db, os.getpid())):
            yield
    finally:
        stop(directory)


@contextmanager
def _using_api(url: str) -> Iterator[None]:
    """This process's Prefect clients talk to `url`, without logs shipped to it."""
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.events.worker import EventsWorker
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_LOGGING_TO_API_ENABLED,
        temporary_settings,
    )

    updates = {PREFECT_API_URL: url, PREFECT_LOGGING_TO_API_ENABLED: False}
    with (
        temporary_settings(updates=updates),
        _temporary_global_settings_context(get_settings_context()),
    ):
        yield
        # Events still queued would reach the next API this process talks to.
        EventsWorker.drain_all()


UP_SERVERS = pytest.StashKey["UpServers"]()


@pytest.fixture(scope="session")
def up_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, prefect_db: Path
) -> Iterator[UpServers]:
    from plan2flow_up import UpServers

    servers = UpServers(tmp_path_factory, prefect_db)
    request.config.stash[UP_SERVERS] = servers
    try:
        yield servers
    finally:
        servers.stop()
        del request.config.stash[UP_SERVERS]


@pytest.fixture(params=["sqlite", "postgresql"])
def local(request: pytest.FixtureRequest, up_servers: UpServers) -> Local:
    """`plan2flow up` on SQLite or PostgreSQL (tests/plan2flow_up.py), shared by the tests of
    every module that use it: under xdist they run one after another in one worker (their
    group is the backend), and the server stops after the last of them. A test that needs one
    backend only says so: `@pytest.mark.parametrize("local", ["sqlite"], indirect=True)`."""
    return up_servers.get(request.param)


def _backend(item: pytest.Item | None) -> str | None:
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("local") if callspec else None
    return backend if isinstance(backend, str) else None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last test in a row that uses a `plan2flow up` server, stop it."""
    backend = _backend(item)
    servers = item.config.stash.get(UP_SERVERS, None)
    if backend is not None and servers is not None and _backend(nextitem) != backend:
        servers.stop(backend)


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PLAN2FLOW_HOME of tests that set none."""
    return tmp_path_factory.mktemp("plan2flow-home")


@pytest.fixture(autouse=True)
def restore_environment(session_home: Path) -> Iterator[None]:
    """`plan2flow run` and `plan2flow agents` set Prefect defaults in the environment of the
    process, and a test may change directory: every test leaves both as it found them, so that
    the suite passes in any order."""
    saved, cwd = dict(os.environ), os.getcwd()
    # Commands that keep state (the audit journal of `compile`, runs) never touch the home of
    # the person running the suite: without a home of its own, a test shares the session's.
    os.environ.setdefault("PLAN2FLOW_HOME", str(session_home))
    # SlipCover's switch (`make pytest`) is for the suite's own processes: a pytest started by a
    # test (the `test` agent's) would take itself for an xdist worker and measure its project.
    os.environ.pop("SLIPCOVER_ENABLED", None)
    yield
    os.environ.clear()
    os.environ.update(saved)
    os.chdir(cwd)


@pytest.fixture
def run_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: None) -> Iterator[Path]:
    """A fresh PLAN2FLOW_HOME and Prefect result store: no cached result leaks across tests."""
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

    home = tmp_path / "home"
    monkeypatch.setenv("PLAN2FLOW_HOME", str(home))
    with temporary_settings(updates={PREFECT_RESULTS_LOCAL_STORAGE_PATH: home / "results"}):
        yield home


@pytest.fixture(scope="session")
def memory_postgres() -> Iterator[Any]:
    """Project memory on PostgreSQL: a fresh database and fresh roles for the session
    (deploy/postgres/roles.sql), migrated to the newest revision; see tests/memory_pg.py."""
    from memory_pg import fresh_postgres

    with fresh_postgres() as pg:
        yield pg
