"""`plan2flow keys new|rotate` on SQLite and PostgreSQL (as the application role): a rotation
re-wraps every data key of artifacts and run parameters under the new master key, in batches,
without touching a payload; then the old key can leave the keys file and everything still
decrypts."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from artifact_stores import journal
from audit_db import Journal
from sqlmodel import col, select
from typer.testing import CliRunner

from plan2flow.cli import app, part_error
from plan2flow.memory.artifacts import ArtifactStore
from plan2flow.memory.blobs_local import LocalBlobStore
from plan2flow.memory.crypto import decrypt_value, encrypt_value, value_context, value_key_id
from plan2flow.memory.db.models import Run
from plan2flow.memory.errors import KeysFileError, KeyUnavailable
from plan2flow.memory.keyring import Keyring, generate_key, load_keyring, read_keys_file
from plan2flow.memory.keys import rotate_keys
from plan2flow.memory.settings import memory_settings

__all__ = ["journal"]  # the fixture

PARAMETERS = b'{"token": "s3cret", "day": "mon"}'


def cli(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def ok(env: dict[str, str], *args: str) -> str:
    result = cli(env, *args)
    assert (result.exit_code, result.exception) == (0, None), result.output
    return str(result.stdout)


def remove_key(path: Path, kid: str) -> None:
    kept = [line for line in path.read_text().splitlines() if not line.startswith(f"{kid}=")]
    path.write_text("\n".join(kept) + "\n")


class Fixture:
    """Sensitive artifacts and encrypted run parameters of two tenants under key ``k1``."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.keys = journal.home / "keys"
        journal.home.mkdir(parents=True, exist_ok=True)
        generate_key(self.keys, "k1")
        self.env = {**journal.environ, "PLAN2FLOW_KEYS_FILE": str(self.keys)}
        self.blobs = LocalBlobStore(journal.home / "blobs")
        keyring = self.keyring()
        self.artifacts: dict[str, list[uuid.UUID]] = {}
        self.stored: dict[tuple[str, str], bytes] = {}
        for tenant in (journal.acme, journal.globex):
            store = self.store(tenant, keyring)
            records = [
                store.put(f"secret {index} of {tenant}".encode(), name=f"s{index}", sensitive=True)
                for index in range(5)
            ]
            records.append(store.put(b"plain", name="plain"))
            self.artifacts[tenant] = [record.id for record in records]
            for record in records:
                self.stored[(tenant, record.digest)] = self.blobs.get_bytes(tenant, record.digest)
            with journal.database.session(tenant) as session:
                for _ in range(3):
                    value = encrypt_value(keyring, PARAMETERS, context=self.context(tenant))
                    session.add(Run(id=uuid.uuid4(), plan="etl", graph_hash="", parameters=value))
                session.add(Run(id=uuid.uuid4(), plan="etl", graph_hash=""))

    def keyring(self) -> Keyring:
        return load_keyring(self.env)

    def store(self, tenant: str, keyring: Keyring) -> ArtifactStore:
        return ArtifactStore(self.journal.database, self.blobs, tenant=tenant, keys=keyring)

    @staticmethod
    def context(tenant: str) -> str:
        return value_context("runs.parameters", tenant)

    def runs(self, tenant: str) -> list[Run]:
        with self.journal.database.session(tenant) as session:
            statement = select(Run).where(col(Run.parameters).is_not(None))
            return list(session.exec(statement).all())

    def check_everything_decrypts(self, keyring: Keyring, key_id: str) -> None:
        for tenant, ids in self.artifacts.items():
            store = self.store(tenant, keyring)
            for ident in ids:
                record = store.show(ident)
                assert record.key_id == (key_id if record.sensitive else None)
                secret = f"secret {record.name[1:]} of {tenant}".encode()
                assert store.read_bytes(ident) == (secret if record.sensitive else b"plain")
                stored = self.blobs.get_bytes(tenant, record.digest)
                assert stored == self.stored[(tenant, record.digest)]  # the payload untouched
            for run in self.runs(tenant):
                assert run.parameters is not None and value_key_id(run.parameters) == key_id
                decrypted = decrypt_value(keyring, run.parameters, context=self.context(tenant))
                assert decrypted == PARAMETERS


@pytest.fixture
def keyed(journal: Journal) -> Fixture:
    return Fixture(journal)


def test_new_then_rotate_then_retire_the_old_key(keyed: Fixture) -> None:
    journal, env = keyed.journal, keyed.env
    assert ok(env, "keys", "new", "--key-id", "k2").startswith("added master key k2 to ")
    assert [kid for kid, _ in read_keys_file(keyed.keys)] == ["k1", "k2"]
    assert stat.S_IMODE(keyed.keys.stat().st_mode) == 0o600
    tenants = ["--tenant", journal.acme, "--tenant", journal.globex]
    out = ok(env, "keys", "rotate", "--batch", "2", *tenants)
    assert out.splitlines() == [
        f"tenant {tenant}: 5 artifact keys and 3 run parameter keys re-wrapped under k2"
        for tenant in (journal.acme, journal.globex)
    ]
    remove_key(keyed.keys, "k1")
    keyring = keyed.keyring()
    assert keyring.key_ids == ("k2",)
    keyed.check_everything_decrypts(keyring, "k2")
    again = ok(env, "keys", "rotate", *tenants)
    assert "0 artifact keys and 0 run parameter keys" in again
    for tenant in (journal.acme, journal.globex):
        rotated = [e for e in journal.rows(tenant) if e.action == "keys.rotated"]
        assert [e.detail for e in rotated] == [
            {"key_id": "k2", "artifacts": 5, "runs": 3},
            {"key_id": "k2", "artifacts": 0, "runs": 0},
        ]
        journal.verify(tenant)


def test_a_rotation_needs_the_old_key_and_a_key_file(keyed: Fixture, tmp_path: Path) -> None:
    env = keyed.env
    ok(env, "keys", "new", "--key-id", "k2")
    remove_key(keyed.keys, "k1")  # too early: the data keys are still wrapped by k1
    result = cli(env, "keys", "rotate", "--tenant", keyed.journal.acme)
    assert isinstance(result.exception, KeyUnavailable) and "'k1'" in str(result.exception)
    assert part_error(result.exception) == 6
    result = cli(env, "keys", "new", "--key-id", "k2")
    assert isinstance(result.exception, KeysFileError) and "already has a key" in str(
        result.exception
    )
    result = cli({**keyed.journal.environ}, "keys", "new")
    assert isinstance(result.exception, KeysFileError)
    assert "PLAN2FLOW_KEYS_FILE" in str(result.exception) and part_error(result.exception) == 6
    result = cli({**keyed.journal.environ}, "keys", "rotate")
    assert isinstance(result.exception, KeyUnavailable)
    assert "no master key is configured" in str(result.exception)
    assert cli(env, "keys", "rotate", "--batch", "0").exit_code == 2


def test_a_rotation_covers_every_tenant_by_default(tmp_path: Path) -> None:
    from audit_db import sqlite_journal

    journal = sqlite_journal(tmp_path / "home")
    try:
        keyed = Fixture(journal)
        generate_key(keyed.keys, "k2")
        settings = memory_settings(keyed.env)
        report = rotate_keys(settings, batch=4)
        assert report.key_id == "k2"
        assert [(t.tenant, t.artifacts, t.runs) for t in report.tenants] == [
            ("acme", 5, 3),
            ("default", 0, 0),
            ("globex", 5, 3),
        ]
        remove_key(keyed.keys, "k1")
        keyed.check_everything_decrypts(keyed.keyring(), "k2")
    finally:
        journal.database.dispose()
