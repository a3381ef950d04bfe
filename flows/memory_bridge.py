"""The runtime on top of project memory (:mod:`plan2flow.memory`): every task output is stored
as an artifact (content-addressed, with its producer), tasks pass references, and a task whose
input is not on its machine fetches it from the store; each run has its row, with encrypted
parameters when master keys are configured, and the run's events feed the audit journal.

The resume cache keys stay the digests of the files themselves (:mod:`.caching`), so a cached
task hands on the references of the run that made its outputs. A store that cannot be written
fails the task (its outputs would not be where the run says), never silently."""

from __future__ import annotations

import atexit
import json
import logging
import threading
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plan2flow.events import InProcessBus, Subscription, from_env
from plan2flow.memory.artifact_meta import Producer
from plan2flow.memory.artifacts import ArtifactStore, open_artifact_store, settings_keyring
from plan2flow.memory.audit_feed import attach_audit
from plan2flow.memory.crypto import encrypt_value, value_context
from plan2flow.memory.db.models import Run as RunRow
from plan2flow.memory.db.models import utc_now
from plan2flow.memory.errors import MemoryStoreError
from plan2flow.memory.settings import MemorySettings, memory_settings

from .artifacts import Artifact
from .errors import TaskFailure
from .workspace import RunPlace

LOGGER = logging.getLogger("plan2flow.runtime")
PARAMETERS_CONTEXT = "runs.parameters"

_lock = threading.Lock()
_stores: dict[tuple[MemorySettings, str], ArtifactStore] = {}


def artifact_store(tenant: str) -> ArtifactStore:
    """This process's store for `tenant` under the environment's settings, opened once (a
    worker runs many tasks; opening checks the database's migrations)."""
    key = (memory_settings(), tenant)
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = open_artifact_store(key[0], tenant=tenant)
        return store


@atexit.register
def close_stores() -> None:
    """Close every store this process opened (their database connections)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


def store_outputs(
    place: RunPlace, task_id: str, paths: Mapping[str, Path], digests: Mapping[str, str]
) -> dict[str, Artifact]:
    """Store a task's published outputs and return their references, by output name."""
    producer = Producer(
        plan=place.plan, run_id=_run_uuid(place), task_id=task_id, graph_hash=place.graph_hash
    )
    try:
        store = artifact_store(place.tenant)
        refs = {}
        for name, path in sorted(paths.items()):
            record = store.put(path, name=name, producer=producer)
            refs[name] = Artifact(str(path), digests[name], str(record.id))
    except MemoryStoreError as error:
        raise TaskFailure(f"task {task_id!r}: its outputs were not stored: {error}") from error
    return refs


def local_input(place: RunPlace, artifact: Artifact) -> Path:
    """Where a task reads an upstream artifact: the producer's path when this machine has it,
    else the same place under this machine's artifact root, fetched from the store."""
    path = Path(artifact.path)
    if path.exists() or not artifact.ref:
        return path
    local = Path(place.artifact_root) / path.parent.name / path.name
    if local.exists():
        return local
    try:
        artifact_store(place.tenant).materialize(artifact.ref, local)
    except MemoryStoreError as error:
        raise TaskFailure(f"input {path.name!r} could not be fetched: {error}") from error
    return local


@dataclass
class RunMemory:
    """What a run holds in project memory while it runs: its row and its audit feed."""

    place: RunPlace
    feed: Subscription | None

    def finish(self, state: str, *, replacing: Collection[str] = ("running",)) -> None:
        """Close the run's row with its final state, after the feed journaled its events; only
        a row in one of the states `replacing` (by default, one no one closed yet: the flow's
        end must not undo an interrupt's ``cancelled``, nor a hook the flow's own end)."""
        with _open_lock:
            _open_runs.pop(self.place.flow_run_id, None)
        if self.feed is not None:
            self.feed.close()
        _close_row(self.place, state, replacing)


RUNNING = "running"
_open_lock = threading.Lock()
_open_runs: dict[str, RunMemory] = {}
"""The runs of this process that have not finished (:func:`end_run` finds their feed)."""


def _close_row(place: RunPlace, state: str, replacing: Collection[str]) -> None:
    run_id = _run_uuid(place)
    if run_id is None:
        return
    try:
        store = artifact_store(place.tenant)
        with store.database.session(place.tenant) as session:
            row = session.get(RunRow, run_id)
            if row is not None and row.state in replacing:
                row.state, row.ended = state, utc_now()
                session.add(row)
    except MemoryStoreError:
        LOGGER.exception("plan2flow: the end of run %s was not recorded", run_id)


def end_run(place: RunPlace, state: str, replacing: Collection[str] = (RUNNING,)) -> None:
    """The end of a run that may not have reached ``Run.finish`` (it crashed, was cancelled, or
    failed in the flow's body), from whichever process Prefect runs the hook in: its row is
    closed with `state` when it is in one of the states `replacing` (by default: unless it was
    closed already), and in the run's own process its audit feed is closed after what it holds.
    Never raises: a hook must not fail on it."""
    with _open_lock:
        memory = _open_runs.get(place.flow_run_id)
    try:
        if memory is not None:
            memory.finish(state, replacing=replacing)
        else:
            _close_row(place, state, replacing)
    except Exception:
        LOGGER.exception("plan2flow: the end of run %s was not recorded", place.flow_run_id)


def begin_run(place: RunPlace, params: Mapping[str, Any], actor: str) -> RunMemory:
    """Record the run (parameters encrypted when master keys exist, else left out: they may be
    secrets) and journal its events when they go through this process's in-process bus (with
    NATS, ``plan2flow audit follow`` journals them from the stream)."""
    store = artifact_store(place.tenant)
    run_id = _run_uuid(place)
    if run_id is not None:
        keyring = settings_keyring(memory_settings())
        sealed = None
        if keyring.key_ids:
            text = json.dumps(dict(params), sort_keys=True, default=str).encode()
            context = value_context(PARAMETERS_CONTEXT, place.tenant)
            sealed = encrypt_value(keyring, text, context=context)
        with store.database.session(place.tenant) as session:
            if session.get(RunRow, run_id) is None:
                session.add(
                    RunRow(
                        id=run_id,
                        tenant=place.tenant,
                        plan=place.plan,
                        graph_hash=place.graph_hash,
                        parameters=sealed,
                        actor=actor,
                    )
                )
    bus = from_env()
    in_process = isinstance(bus, InProcessBus)
    feed = attach_audit(bus, store.database, place.tenant) if in_process else None
    memory = RunMemory(place, feed)
    with _open_lock:
        _open_runs[place.flow_run_id] = memory
    return memory


def _run_uuid(place: RunPlace) -> uuid.UUID | None:
    """The flow run id as a UUID; None for a run outside Prefect (``local-...`` ids)."""
    try:
        return uuid.UUID(place.flow_run_id)
    except ValueError:
        return None
