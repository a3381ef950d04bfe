"""The artifact store on SQLite and on PostgreSQL (as the application role), with real local
directories and moto's S3 server: metadata, directories as deterministic tars, encryption at
rest, verified reads, search and its pages, tenants, deletion, retention and collection, audit
entries and events."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import stat
import tarfile
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from artifact_stores import KEYRING, any_store, journal, s3_endpoint, store
from audit_db import Journal

from plan2flow.events import InProcessBus
from plan2flow.memory import audit
from plan2flow.memory.artifact_meta import Producer
from plan2flow.memory.artifact_query import ArtifactQuery
from plan2flow.memory.artifacts import ArtifactStore
from plan2flow.memory.audit_feed import attach_audit
from plan2flow.memory.blobs_local import LocalBlobStore
from plan2flow.memory.db.models import ArtifactRecord, AuditEntry
from plan2flow.memory.errors import (
    ArtifactNotFound,
    BlobCorrupted,
    KeyUnavailable,
    MemoryStoreError,
    UnsafeArchive,
)
from plan2flow.memory.keyring import Keyring

__all__ = ["any_store", "journal", "s3_endpoint", "store"]  # the fixtures

RUN = uuid.UUID("8d7c58f4-3a51-4d0e-9a3f-0a1b2c3d4e5f")
GRAPH = "sha256:" + "ab" * 32
PRODUCER = Producer(plan="etl", run_id=RUN, task_id="load", graph_hash=GRAPH)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entries(journal: Journal, tenant: str, action: str) -> list[AuditEntry]:
    return [entry for entry in journal.rows(tenant) if entry.action == action]


def make_tree(root: Path, order: list[str]) -> Path:
    """A small tree: files written in ``order``, a subdirectory, an executable and a link."""
    contents = {"a.txt": b"alpha\n", "sub/b.py": b"print('b')\n", "sub/run.sh": b"#!/bin/sh\n"}
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents[name])
    (root / "sub" / "run.sh").chmod(0o775)
    (root / "sub" / "to-a").symlink_to("../a.txt")
    return root


def set_created(journal: Journal, tenant: str, ident: uuid.UUID, moment: dt.datetime) -> None:
    with journal.database.session(tenant) as session:
        session.execute(
            sa.update(ArtifactRecord).where(ArtifactRecord.id == ident).values(created=moment)
        )


def test_a_file_is_stored_with_its_metadata_and_audited(
    any_store: ArtifactStore, journal: Journal, tmp_path: Path
) -> None:
    source = tmp_path / "report.json"
    source.write_bytes(b'{"passed": 12}\n')
    record = any_store.put(
        source, producer=PRODUCER, labels={"team": "data"}, expires=dt.timedelta(days=1)
    )
    assert (record.tenant, record.name, record.kind) == (journal.acme, "report.json", "file")
    assert record.media_type == "application/json"
    assert (record.size, record.digest) == (15, sha(source.read_bytes()))
    assert record.content_digest == record.digest and not record.sensitive
    assert (record.plan, record.run_id, record.task_id) == ("etl", RUN, "load")
    assert record.graph_hash == "ab" * 32
    assert record.labels == {"team": "data"}
    assert record.expires is not None and record.expires - record.created == dt.timedelta(days=1)
    assert any_store.blobs.exists(journal.acme, record.digest)
    assert any_store.show(record.id) == any_store.show(str(record.id))
    assert any_store.show(record.digest).id == record.id
    assert any_store.read_bytes(record.id) == source.read_bytes()
    target = tmp_path / "out" / "copy.json"
    target.parent.mkdir()
    any_store.materialize(record.id, target)
    assert target.read_bytes() == source.read_bytes()
    (stored,) = entries(journal, journal.acme, "artifact.stored")
    assert stored.subject == "etl/report.json"
    assert stored.detail["artifact"] == str(record.id)
    assert stored.detail["content_digest"] == record.content_digest
    assert (stored.detail["run"], stored.detail["task"]) == (str(RUN), "load")
    journal.verify(journal.acme)


def test_the_same_tree_gives_the_same_digest_and_comes_back_whole(
    store: ArtifactStore, tmp_path: Path
) -> None:
    one = make_tree(tmp_path / "one", ["a.txt", "sub/b.py", "sub/run.sh"])
    two = make_tree(tmp_path / "two", ["sub/run.sh", "sub/b.py", "a.txt"])
    os.utime(two / "a.txt", (1_000_000, 1_000_000))
    (two / "sub" / "b.py").chmod(0o664)
    first, second = store.put(one), store.put(two)
    assert first.digest == second.digest
    assert (first.kind, first.media_type) == ("directory", "application/x-tar")
    with tarfile.open(fileobj=io.BytesIO(store.read_bytes(first.id))) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a.txt", "sub", "sub/b.py", "sub/run.sh", "sub/to-a"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    target = tmp_path / "back"
    store.materialize(first.id, target)
    assert (target / "a.txt").read_bytes() == b"alpha\n"
    assert (target / "sub" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (target / "sub" / "b.py").stat().st_mode & 0o777 == 0o644
    assert os.readlink(target / "sub" / "to-a") == "../a.txt"
    assert (target / "sub" / "to-a").read_bytes() == b"alpha\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back", "home", "one", "two"]


def test_a_directory_goes_to_a_new_or_empty_directory_only(
    store: ArtifactStore, tmp_path: Path
) -> None:
    record = store.put(make_tree(tmp_path / "tree", ["a.txt", "sub/b.py", "sub/run.sh"]))
    empty = tmp_path / "empty"
    empty.mkdir()
    store.materialize(record.id, empty)
    assert (empty / "a.txt").is_file()
    with pytest.raises(MemoryStoreError, match="exists: a directory artifact goes to a new"):
        store.materialize(record.id, empty)
    assert sorted(p.name for p in empty.iterdir()) == ["a.txt", "sub"]
    file_record = store.put(b"x", name="x.txt")
    with pytest.raises(MemoryStoreError, match="is a directory"):
        store.materialize(file_record.id, empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "home", "tree"]


def test_what_a_tree_cannot_hold_is_refused_before_anything_is_stored(
    store: ArtifactStore, journal: Journal, tmp_path: Path
) -> None:
    outward = tmp_path / "outward"
    outward.mkdir()
    (outward / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(MemoryStoreError, match="a symbolic link out of the directory"):
        store.put(outward)
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "pipe")
    with pytest.raises(MemoryStoreError, match="neither a directory, a regular file nor"):
        store.put(fifo)
    with pytest.raises(MemoryStoreError, match="neither a regular file nor a directory"):
        store.put(fifo / "pipe")
    with pytest.raises(MemoryStoreError, match="No such file"):
        store.put(tmp_path / "missing")
    with pytest.raises(MemoryStoreError, match="needs a name"):
        store.put(b"data")
    with pytest.raises(MemoryStoreError, match="label key"):
        store.put(b"data", name="d", labels={"no spaces": "x"})
    with pytest.raises(MemoryStoreError, match="kind"):
        store.put(b"data", name="d", kind="Not A Kind")
    with pytest.raises(MemoryStoreError, match="time zone"):
        store.put(b"data", name="d", expires=dt.datetime(2030, 1, 1))
    assert store.search().records == []
    assert list(store.blobs.iter_blobs(journal.acme)) == []


def test_a_sensitive_artifact_is_ciphertext_at_rest(
    any_store: ArtifactStore, journal: Journal, tmp_path: Path
) -> None:
    secret = b"api-token=0123456789abcdef " * 100
    record = any_store.put(secret, name="env.txt", sensitive=True)
    assert record.sensitive and record.key_id == "k1"
    assert record.wrapped_key is not None and len(record.wrapped_key) == 61
    assert (record.size, record.content_digest) == (len(secret), sha(secret))
    assert record.digest != record.content_digest
    stored = any_store.blobs.get_bytes(journal.acme, record.digest)
    assert b"api-token" not in stored and len(stored) == len(secret) + 28
    assert any_store.read_bytes(record.id) == secret
    target = tmp_path / "env.txt"
    any_store.materialize(record.content_digest, target)  # by the digest of its plaintext
    assert target.read_bytes() == secret
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    keyless = ArtifactStore(any_store.database, any_store.blobs, tenant=journal.acme)
    with pytest.raises(KeyUnavailable, match="'k1' is not configured"):
        keyless.read_bytes(record.id)
    tree = make_tree(tmp_path / "tree", ["a.txt", "sub/b.py", "sub/run.sh"])
    sealed = any_store.put(tree, sensitive=True)
    assert sealed.kind == "directory" and sealed.digest != sealed.content_digest
    any_store.materialize(sealed.id, tmp_path / "opened")
    assert (tmp_path / "opened" / "sub" / "b.py").read_bytes() == b"print('b')\n"


def test_materialize_verifies_and_leaves_nothing_when_a_blob_is_corrupted(
    store: ArtifactStore, journal: Journal, tmp_path: Path
) -> None:
    record = store.put(b"the bytes that were stored", name="data.bin")
    assert isinstance(store.blobs, LocalBlobStore)
    path = store.blobs.path(journal.acme, record.digest)
    path.chmod(0o600)
    path.write_bytes(b"the bytes that were swapped")
    target = tmp_path / "data.bin"
    with pytest.raises(BlobCorrupted):
        store.materialize(record.id, target)
    with pytest.raises(BlobCorrupted):
        store.read_bytes(record.id)
    assert list(tmp_path.iterdir()) == [journal.home]


@pytest.mark.slow
def test_search_by_plan_run_task_kind_label_name_and_time(
    store: ArtifactStore, tmp_path: Path
) -> None:
    other_run = uuid.uuid4()
    made = {
        "wheel": store.put(
            b"w",
            name="pkg-1.0-py3-none-any.whl",
            kind="wheel",
            producer=Producer(plan="etl", run_id=RUN, task_id="build"),
            labels={"team": "data", "tier": "gold"},
        ),
        "sbom": store.put(
            b"s",
            name="bom.cdx.json",
            kind="sbom",
            producer=Producer(plan="etl", run_id=other_run, task_id="package"),
            labels={"team": "data"},
        ),
        "log": store.put(
            b"l", name="build.log", producer=Producer(plan="web", task_id="build"), labels={}
        ),
    }

    def names(**filters: object) -> set[str]:
        return {record.name for record in store.search(**filters).records}

    assert made["sbom"].media_type == "application/vnd.cyclonedx+json"
    assert names() == {"pkg-1.0-py3-none-any.whl", "bom.cdx.json", "build.log"}
    assert names(plan="etl") == {"pkg-1.0-py3-none-any.whl", "bom.cdx.json"}
    assert names(run_id=other_run) == {"bom.cdx.json"}
    assert names(task_id="build") == {"pkg-1.0-py3-none-any.whl", "build.log"}
    assert names(kind="file") == {"build.log"}
    assert names(labels={"team": "data"}) == {"pkg-1.0-py3-none-any.whl", "bom.cdx.json"}
    assert names(labels={"team": "data", "tier": "gold"}) == {"pkg-1.0-py3-none-any.whl"}
    assert names(labels={"team": "web"}) == set()
    assert names(name_prefix="b") == {"bom.cdx.json", "build.log"}
    assert names(name_prefix="%") == set()  # a pattern character is a character
    assert names(plan="etl", task_id="build", kind="wheel") == {"pkg-1.0-py3-none-any.whl"}
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert names(since=future) == set()
    assert len(names(since=future - dt.timedelta(hours=2))) == 3
    with pytest.raises(MemoryStoreError, match="1 to 1000"):
        store.search(limit=0)


def test_pages_neither_skip_nor_repeat_while_artifacts_come_and_go(
    store: ArtifactStore, journal: Journal
) -> None:
    records = [store.put(f"v{index}".encode(), name=f"a{index}") for index in range(7)]
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for record in records[:4]:  # ties on created: the id orders them
        set_created(journal, journal.acme, record.id, moment)
        record.created = moment
    expected = sorted(records, key=lambda r: (r.created, r.id), reverse=True)
    first = store.search(limit=3)
    assert [r.id for r in first.records] == [r.id for r in expected[:3]]
    assert first.next is not None
    store.put(b"newer", name="added-between-pages")  # before the cursor: not seen
    store.delete(expected[5].id)  # after the cursor: gone from the next page
    seen = [r.id for r in first.records]
    cursor = first.next
    while cursor is not None:
        page = store.search(ArtifactQuery(limit=3, after=cursor))
        seen.extend(r.id for r in page.records)
        cursor = page.next
    assert seen == [r.id for r in expected if r.id != expected[5].id]
    last = store.search(limit=100)
    assert last.next is None and len(last.records) == 7


def test_tenants_see_only_their_own_artifacts(
    store: ArtifactStore, journal: Journal, tmp_path: Path
) -> None:
    mine = store.put(b"acme's report", name="report.txt", producer=PRODUCER)
    theirs = store.with_tenant(journal.globex)
    assert theirs.search().records == []
    assert theirs.search(plan="etl").records == []
    for ref in (mine.id, str(mine.id), mine.digest, mine.content_digest):
        with pytest.raises(ArtifactNotFound):
            theirs.show(ref)
        with pytest.raises(ArtifactNotFound):
            theirs.materialize(ref, tmp_path / "stolen")
    with pytest.raises(ArtifactNotFound):
        theirs.delete(mine.id)
    same = theirs.put(b"acme's report", name="report.txt")  # the same bytes: its own blob
    assert same.digest == mine.digest and same.id != mine.id
    theirs.delete(same.id, grace=dt.timedelta(0))
    assert not store.blobs.exists(journal.globex, mine.digest)
    assert store.read_bytes(mine.id) == b"acme's report"
    report = theirs.gc(grace=dt.timedelta(0), keep_last=0)
    assert report.retired == [] and report.blobs == []
    assert store.show(mine.id).id == mine.id
    assert entries(journal, journal.globex, "artifact.stored")[0].subject == "/report.txt"
    assert not (tmp_path / "stolen").exists()


def test_delete_journals_and_collects_a_blob_only_once_unreferenced(
    store: ArtifactStore, journal: Journal
) -> None:
    first = store.put(b"shared", name="one")
    second = store.put(b"shared", name="two")
    assert store.delete(first.id, grace=dt.timedelta(0)).id == first.id
    assert store.blobs.exists(journal.acme, first.digest)  # `two` still needs it
    store.delete(str(second.id))  # the default grace: a blob touched just now stays
    assert store.blobs.exists(journal.acme, first.digest)
    assert store.collect_blobs({first.digest}, grace=dt.timedelta(0)) == [first.digest]
    assert not store.blobs.exists(journal.acme, first.digest)
    with pytest.raises(ArtifactNotFound):
        store.show(first.id)
    deleted = entries(journal, journal.acme, "artifact.deleted")
    assert [e.detail["artifact"] for e in deleted] == [str(first.id), str(second.id)]
    assert {e.detail["reason"] for e in deleted} == {"deleted"}
    with pytest.raises(ArtifactNotFound, match="neither an artifact id"):
        store.show("not-an-id")


def test_retention_expires_and_keeps_the_newest_of_each_plan_task_and_name(
    store: ArtifactStore, journal: Journal
) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    versions = []
    for index in range(5):
        record = store.put(f"version {index}".encode(), name="out.csv", producer=PRODUCER)
        set_created(journal, journal.acme, record.id, long_ago + dt.timedelta(hours=index))
        versions.append(record)
    other = store.put(b"other task", name="out.csv", producer=Producer(plan="etl", task_id="x"))
    set_created(journal, journal.acme, other.id, long_ago)
    fresh = store.put(b"fresh", name="fresh.txt")
    expired = store.put(b"gone soon", name="tmp.txt", expires=dt.timedelta(seconds=-1))

    planned = store.gc(older_than=dt.timedelta(days=30), keep_last=2, dry_run=True)
    assert planned.dry_run and [r.id for r in planned.expired] == [expired.id]
    assert [r.id for r in planned.retired] == [v.id for v in versions[:3]]
    assert len(store.search(limit=100).records) == 8  # a dry run deletes nothing

    done = store.gc(older_than=dt.timedelta(days=30), keep_last=2, grace=dt.timedelta(0))
    assert [r.id for r in done.expired] == [expired.id]
    assert [r.id for r in done.retired] == [v.id for v in versions[:3]]
    assert {b.digest for b in done.blobs} == {expired.digest} | {v.digest for v in versions[:3]}
    assert done.freed_bytes == sum(r.size for r in (expired, *versions[:3]))
    left = {r.id for r in store.search(limit=100).records}
    assert left == {versions[3].id, versions[4].id, other.id, fresh.id}
    reasons = [e.detail["reason"] for e in entries(journal, journal.acme, "artifact.deleted")]
    assert reasons == ["expired", "retention", "retention", "retention"]
    assert [r.id for r in store.gc(keep_last=1).retired] == [versions[3].id]
    with pytest.raises(MemoryStoreError, match="keep-last must be 0 or more"):
        store.gc(keep_last=-1)


def test_collection_keeps_fresh_blobs_and_removes_old_ones_and_stale_temporaries(
    any_store: ArtifactStore, journal: Journal
) -> None:
    referenced = any_store.put(b"kept: a row needs it", name="kept")
    orphan = any_store.blobs.put_bytes(journal.acme, b"a writer killed before its row").digest
    report = any_store.gc()  # within the grace period: kept
    assert report.blobs == [] and any_store.blobs.exists(journal.acme, orphan)
    if isinstance(any_store.blobs, LocalBlobStore):
        old = time.time() - 7200
        os.utime(any_store.blobs.path(journal.acme, orphan), (old, old))
        os.utime(any_store.blobs.path(journal.acme, referenced.digest), (old, old))
        stale = any_store.blobs.root / journal.acme / "tmp" / "4242-dead.tmp"
        stale.write_bytes(b"half a blob")
        os.utime(stale, (old, old))
        report = any_store.gc()
        assert report.temporaries == ["4242-dead.tmp"]
    else:
        report = any_store.gc(grace=dt.timedelta(0))
    assert [blob.digest for blob in report.blobs] == [orphan]
    assert not any_store.blobs.exists(journal.acme, orphan)
    assert any_store.read_bytes(referenced.id) == b"kept: a row needs it"


def test_a_put_publishes_its_event_and_the_journal_keeps_one_entry(
    journal: Journal, tmp_path: Path
) -> None:
    bus = InProcessBus()
    subscription = attach_audit(bus, journal.database, journal.acme)
    try:
        store = ArtifactStore(
            journal.database,
            LocalBlobStore(journal.home / "blobs"),
            tenant=journal.acme,
            bus=bus,
        )
        source = tmp_path / "out.csv"
        source.write_bytes(b"a,b\n1,2\n")
        record = store.put(source, producer=PRODUCER)
        assert subscription.wait_handled(1, 30)
    finally:
        subscription.close()
        bus.close()
    assert subscription.errors == 0
    (entry,) = entries(journal, journal.acme, "artifact.stored")
    assert entry.id == audit.key_id(journal.acme, f"event:{record.id}")
    assert entry.detail["artifact"] == str(record.id)


def test_the_event_of_a_put_names_the_artifact(journal: Journal, tmp_path: Path) -> None:
    bus = InProcessBus()
    subscription = bus.subscribe(f"plan2flow.{journal.acme}.>")
    try:
        store = ArtifactStore(
            journal.database, LocalBlobStore(tmp_path / "blobs"), tenant=journal.acme, bus=bus
        )
        record = store.put(b"a,b\n", name="out.csv", producer=PRODUCER)
        event = subscription.get(timeout=30)
    finally:
        subscription.close()
        bus.close()
    assert event is not None and event.id == str(record.id)
    assert (event.type, event.plan, event.taskid) == ("plan2flow.artifact.stored", "etl", "load")
    assert (event.flowrunid, event.graphhash) == (str(RUN), GRAPH)
    assert event.to_dict()["data"] == {
        "name": "out.csv",
        "path": "",
        "digest": record.content_digest,
        "size": 4,
    }


def test_a_crafted_archive_is_refused_when_unpacked(store: ArtifactStore, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        member = tarfile.TarInfo("../escaped.txt")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"bad"))
    record = store.put(buffer.getvalue(), name="tree.tar", kind="directory")
    with pytest.raises(UnsafeArchive, match="not a relative path without"):
        store.materialize(record.id, tmp_path / "dest" / "tree")
    assert not (tmp_path / "dest" / "escaped.txt").exists()


def test_a_keyring_loads_only_when_a_sensitive_artifact_needs_it(journal: Journal) -> None:
    loads: list[int] = []

    def load() -> Keyring:
        loads.append(1)
        return KEYRING

    lazy = ArtifactStore(
        journal.database, LocalBlobStore(journal.home / "b"), tenant=journal.acme, keys=load
    )
    lazy.put(b"plain", name="p")
    assert loads == []
    lazy.put(b"secret", name="s", sensitive=True)
    lazy.put(b"secret 2", name="s2", sensitive=True)
    assert loads == [1]
    assert lazy.read_bytes(lazy.search(name_prefix="s2").records[0].id) == b"secret 2"
