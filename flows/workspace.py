"""Where a run keeps its files under ``PLAN2FLOW_HOME``: the run's workspace, the plan's
artifacts by cache key, the staging directories tasks write into, and the lock that tells a
live run's staging from a dead one's."""

from __future__ import annotations

import dataclasses
import fcntl
import re
import shutil
from pathlib import Path
from typing import Any

from plan2flow.events import RunContext
from plan2flow.events.kinds import DEFAULT_TENANT
from plan2flow.events.relay import RelayEndpoint
from plan2flow.home import plan2flow_home


@dataclasses.dataclass(frozen=True)
class RunPlace:
    """What a task knows of its run, passed in its arguments (plain data, so that a task runs
    the same in a thread, another process or on another machine): the plan and graph its events
    name, the flow run, and where the run's workspace and the plan's artifacts are."""

    plan: str
    graph_hash: str
    flow_run_id: str
    workspace: str
    artifact_root: str
    tenant: str = DEFAULT_TENANT
    """The tenant of the run's events (``PLAN2FLOW_TENANT``, read once when the run starts)."""
    process: str = ""
    """``host:pid`` of the flow's process: a task elsewhere flushes its bus when it ends."""
    relay: RelayEndpoint | None = None
    """With the in-process bus, where the flow's process takes the events of its tasks that run
    in other processes (:mod:`plan2flow.events.relay`)."""
    budgeted: bool = False
    """A budget applies to the run: each task checks it before it starts (:mod:`.budgeting`)."""
    compute_price: float = 0.0
    """US dollars per hour of task compute, read once when the run starts."""
    traceparent: str = ""
    """The W3C ``traceparent`` of the flow run's span when traces are on: a task in another
    process (a process pool, a Dask worker) makes its span a child of it."""

    def events(self) -> RunContext:
        """What builds this run's events on the bus (see :mod:`plan2flow.events`)."""
        return RunContext(
            tenant=self.tenant,
            plan=self.plan,
            graphhash=self.graph_hash,
            flowrunid=self.flow_run_id,
        )


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


def artifact_root(plan: str, home: Path | None = None) -> Path:
    """``$PLAN2FLOW_HOME/artifacts/<plan>``: the outputs of the plan's tasks, by cache key."""
    return (home or plan2flow_home()) / "artifacts" / safe_name(plan)


def run_workspace(plan: str, flow_run_id: str, home: Path | None = None) -> Path:
    """``$PLAN2FLOW_HOME/runs/<plan>/<flow run id>``: the working directories of one run."""
    return (home or plan2flow_home()) / "runs" / safe_name(plan) / flow_run_id


def staging_dirs(plan: str, flow_run_id: str, home: Path | None = None) -> list[Path]:
    """The directories a run's tasks are writing their outputs into."""
    return list(artifact_root(plan, home).glob(f".plan2flow-*.{flow_run_id}"))


RUN_LOCK = ".plan2flow-run.lock"
"""Held (``flock``) in a run's workspace while the run lives; the kernel releases it when the
process dies, however it dies."""


def hold_lock(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")  # noqa: SIM115 - held for the run, closed by Run.release
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _is_alive(lock: Path) -> bool:
    """Whether the run owning `lock` still runs (a missing lock: its run is long gone)."""
    try:
        handle = open(lock, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def discard_stale_staging(artifact_root: Path, runs_root: Path) -> None:
    """Remove the staging directories (``.<cache key>.<flow run id>``) of runs that died
    without cleaning up (a ``kill -9``, a crash); a live run's lock keeps its own."""
    try:
        entries = list(artifact_root.iterdir())
    except OSError:
        return
    for entry in entries:
        _, dot, run_id = entry.name.removeprefix(".").partition(".")
        if not (entry.name.startswith(".plan2flow-") and dot and entry.is_dir()):
            continue
        if not _is_alive(runs_root / run_id / RUN_LOCK):
            shutil.rmtree(entry, ignore_errors=True)


def discard_staging(plan: str, flow_run_id: str, home: Path | None = None) -> None:
    """Remove the staging directories of a run that is being abandoned, found by the plan's
    name and the flow run id under the plan2flow home, whichever process its tasks ran in."""
    for stage in staging_dirs(plan, flow_run_id, home):
        shutil.rmtree(stage, ignore_errors=True)
