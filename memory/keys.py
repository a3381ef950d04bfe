"""Master keys in use: add one (:func:`new_key`) and move every data key onto the current one
(:func:`rotate_keys`), which is how an old master key is retired.

A rotation re-wraps data keys only: each sensitive artifact's ``wrapped_key`` (its blob is not
read or written) and each run's ``parameters`` envelope (the payload bytes are kept, only the
header with the wrapped key changes). It runs tenant by tenant through the application's own
database sessions, so on PostgreSQL as the application role under row-level security, in
batches of one transaction each, and appends ``keys.rotated`` to each tenant's audit journal.
A rotation interrupted half-way is simply run again: rows already under the current key are
skipped. Once it has finished, the old key can leave the keys file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import col, select

from . import audit
from .artifacts import settings_keyring
from .crypto import WrappedKey, rewrap, value_key_id
from .db.engine import Database, configured_database
from .db.models import ArtifactRecord, Run, utc_now
from .errors import KeysFileError
from .keyring import Keyring, generate_key
from .settings import KEYS_FILE_ENV, MemorySettings, check_tenant, memory_settings
from .tenants import list_tenants

DEFAULT_BATCH = 500


@dataclass(frozen=True)
class TenantRotation:
    """How many data keys of one tenant moved onto the current key."""

    tenant: str
    artifacts: int
    runs: int


@dataclass(frozen=True)
class RotationReport:
    """A rotation: the current key id and what moved onto it, tenant by tenant."""

    key_id: str
    tenants: Sequence[TenantRotation]


def default_key_id(now: dt.datetime) -> str:
    """A new key's id when none is given: the moment, to the second, in UTC.

    >>> default_key_id(dt.datetime(2026, 11, 30, 9, 5, 7, tzinfo=dt.UTC))
    'k20261130T090507Z'
    """
    return f"k{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"


def new_key(settings: MemorySettings | None = None, key_id: str | None = None) -> str:
    """Append a fresh master key to the keys file (``PLAN2FLOW_KEYS_FILE``), which makes it
    current for new values; its id. Existing data keys move onto it with :func:`rotate_keys`."""
    settings = settings or memory_settings()
    if settings.keys_file is None:
        raise KeysFileError(
            f"a new master key goes into a keys file: set {KEYS_FILE_ENV} (a single "
            "PLAN2FLOW_MASTER_KEY cannot hold two keys for a rotation)"
        )
    return generate_key(settings.keys_file, key_id or default_key_id(utc_now()))


def _rotate_artifacts(database: Database, keyring: Keyring, tenant: str, batch: int) -> int:
    target, moved, last = keyring.current, 0, None
    while True:
        with database.session(tenant) as session:
            statement = (
                select(ArtifactRecord)
                .where(col(ArtifactRecord.tenant) == tenant)
                .where(col(ArtifactRecord.wrapped_key).is_not(None))
                .where(col(ArtifactRecord.key_id) != target)
                .order_by(col(ArtifactRecord.id))
                .limit(batch)
                .with_for_update()
            )
            if last is not None:
                statement = statement.where(col(ArtifactRecord.id) > last)
            rows = session.exec(statement).all()
            for row in rows:
                assert row.key_id is not None and row.wrapped_key is not None
                key = rewrap(keyring, WrappedKey(row.key_id, bytes(row.wrapped_key)), key_id=target)
                row.key_id, row.wrapped_key = key.key_id, key.wrapped
        if not rows:
            return moved
        moved += len(rows)
        last = rows[-1].id


def _rotate_runs(database: Database, keyring: Keyring, tenant: str, batch: int) -> int:
    target, moved, last = keyring.current, 0, None
    while True:
        with database.session(tenant) as session:
            statement = (
                select(Run)
                .where(col(Run.tenant) == tenant)
                .where(col(Run.parameters).is_not(None))
                .order_by(col(Run.id))
                .limit(batch)
                .with_for_update()
            )
            if last is not None:
                statement = statement.where(col(Run.id) > last)
            rows = session.exec(statement).all()
            for row in rows:
                assert row.parameters is not None
                if value_key_id(bytes(row.parameters)) != target:
                    row.parameters = rewrap(keyring, bytes(row.parameters), key_id=target)
                    moved += 1
        if not rows:
            return moved
        last = rows[-1].id


def rotate_tenant(
    database: Database, keyring: Keyring, tenant: str, *, batch: int = DEFAULT_BATCH
) -> TenantRotation:
    """Move every data key of ``tenant`` onto the current master key; journal it."""
    check_tenant(tenant)
    target = keyring.current
    artifacts = _rotate_artifacts(database, keyring, tenant, batch)
    runs = _rotate_runs(database, keyring, tenant, batch)
    detail = {"key_id": target, "artifacts": artifacts, "runs": runs}
    audit.record(database, tenant, "keys.rotated", target, detail)
    return TenantRotation(tenant, artifacts, runs)


def rotate_keys(
    settings: MemorySettings | None = None,
    *,
    tenants: Sequence[str] | None = None,
    batch: int = DEFAULT_BATCH,
) -> RotationReport:
    """Re-wrap every data key of every tenant (or of ``tenants``) under the current master key
    of ``settings``, without touching a payload."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    settings = settings or memory_settings()
    keyring = settings_keyring(settings)
    target = keyring.current
    names = list(tenants) if tenants else [tenant.name for tenant in list_tenants(settings)]
    with configured_database(settings) as database:
        done = [rotate_tenant(database, keyring, name, batch=batch) for name in names]
    return RotationReport(target, done)


__all__ = [
    "RotationReport",
    "TenantRotation",
    "default_key_id",
    "new_key",
    "rotate_keys",
    "rotate_tenant",
]
