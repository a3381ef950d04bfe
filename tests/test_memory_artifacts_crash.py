"""The artifact store against real processes: a writer killed with SIGKILL in the middle of its
puts leaves no partial blob and no row without its blob, and a collector running while a writer
puts never loses a blob that a committed row references."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from artifact_stores import journal
from audit_db import Journal

from plan2flow.memory.artifacts import ArtifactStore
from plan2flow.memory.blobs_local import LocalBlobStore
from plan2flow.memory.keyring import generate_key, load_keyring

__all__ = ["journal"]  # the fixture

ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import os, sys
from pathlib import Path
from plan2flow.memory.artifacts import open_artifact_store
source = Path(sys.argv[1])
with open_artifact_store() as store:
    for index in range(1_000_000):
        with open(source, "r+b") as f:
            f.write(index.to_bytes(8, "big"))  # new content every time: a new blob
        record = store.put(source, name=f"out-{index}", sensitive=index % 2 == 1)
        print(record.id, flush=True)
"""

REPUTTER = """
import json, os, sys, time
from plan2flow.memory.artifacts import open_artifact_store
count, rounds = int(sys.argv[1]), int(sys.argv[2])
contents = [f"content {i}".encode() * 1000 for i in range(count)]
with open_artifact_store() as store:
    for index in range(rounds * count):
        record = store.put(contents[index % count], name=f"c{index}")
        if index >= (rounds - 1) * count:  # the last round keeps its rows
            print(json.dumps({"kept": str(record.id)}), flush=True)
            continue
        # Unreferenced again and made old: the collector may take it while the next round
        # puts the same content again.
        store.delete(record.id)
        old = time.time() - 7200
        try:
            os.utime(store.blobs.path(store.tenant, record.digest), (old, old))
        except FileNotFoundError:
            pass
print(json.dumps({"done": True}), flush=True)
"""


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


class Process:
    """A Python process of the project whose stdout lines are collected as they come."""

    def __init__(self, code: str, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, **env},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.strip())

    def kill(self) -> int:
        self.popen.kill()
        return self.finish(30)

    def finish(self, timeout: float) -> int:
        status = self.popen.wait(timeout)
        self._reader.join(30)
        assert self.popen.stdout is not None
        self.popen.stdout.close()
        return status


@pytest.fixture
def environ(journal: Journal) -> Iterator[dict[str, str]]:
    """The environment of a writer of tenant acme, with a keys file for its sensitive puts."""
    keys = journal.home / "keys"
    journal.home.mkdir(parents=True, exist_ok=True)
    generate_key(keys, "k1")
    yield {**journal.environ, "PLAN2FLOW_KEYS_FILE": str(keys)}


def store_of(journal: Journal, environ: dict[str, str]) -> ArtifactStore:
    return ArtifactStore(
        journal.database,
        LocalBlobStore(journal.home / "blobs"),
        tenant=journal.acme,
        keys=load_keyring(environ),
    )


def temporaries(store: ArtifactStore, tenant: str) -> list[Path]:
    assert isinstance(store.blobs, LocalBlobStore)
    directory = store.blobs.root / tenant / "tmp"
    return [p for p in directory.iterdir() if p.stat().st_size] if directory.is_dir() else []


def kill_mid_copy(
    store: ArtifactStore, environ: dict[str, str], source: Path, puts: int
) -> list[str]:
    """Start a writer, SIGKILL it while it copies a blob after ``puts`` committed puts; the ids
    it reported committed."""
    writer = Process(WRITER, [str(source)], environ)
    try:
        wait_until(
            lambda: len(writer.lines) >= puts and bool(temporaries(store, store.tenant)),
            120,
            f"{puts} puts and a blob being copied",
        )
        assert writer.kill() == -9
    finally:
        if writer.popen.poll() is None:
            writer.kill()
    return writer.lines


@pytest.mark.slow
def test_a_writer_killed_mid_put_leaves_no_partial_blob_and_no_row_without_its_blob(
    journal: Journal, environ: dict[str, str], tmp_path: Path
) -> None:
    store = store_of(journal, environ)
    source = tmp_path / "output.bin"
    source.write_bytes(os.urandom(24 << 20))  # long enough to be caught while it is copied
    committed: list[str] = []
    for puts in (3, 6):  # two writers, each killed in the middle of copying a blob
        committed += kill_mid_copy(store, environ, source, puts)
    assert temporaries(store, journal.acme)  # what the killed writers were copying
    rows = store.search(limit=1000).records
    assert {str(r.id) for r in rows} >= set(committed) and len(rows) <= len(committed) + 2
    for record in rows:  # every row has its whole blob
        data = store.read_bytes(record.id)
        assert len(data) == record.size == 24 << 20
        assert data[:8] == int(record.name.removeprefix("out-")).to_bytes(8, "big")
    for blob in store.blobs.iter_blobs(journal.acme):  # and no blob is partial
        assert len(store.blobs.get_bytes(journal.acme, blob.digest)) == blob.size
    journal.verify(journal.acme)
    report = store.gc(grace=dt.timedelta(0))
    assert report.temporaries and not temporaries(store, journal.acme)
    referenced = {record.digest for record in rows}
    assert {blob.digest for blob in report.blobs}.isdisjoint(referenced)
    assert {b.digest for b in store.blobs.iter_blobs(journal.acme)} == referenced


@pytest.mark.slow
def test_collection_running_beside_a_writer_never_loses_a_referenced_blob(
    journal: Journal, environ: dict[str, str]
) -> None:
    store = store_of(journal, environ)
    contents, rounds = 40, 5
    writer = Process(REPUTTER, [str(contents), str(rounds)], environ)
    collected: list[str] = []
    try:
        while writer.popen.poll() is None:
            report = store.gc(grace=dt.timedelta(seconds=60))
            collected += [blob.digest for blob in report.blobs]
        assert writer.finish(60) == 0
    finally:
        if writer.popen.poll() is None:
            writer.kill()
    messages = [json.loads(line) for line in writer.lines]
    assert messages[-1] == {"done": True}
    assert collected, "the collector never deleted a blob: it did not race the writer"
    kept = [message["kept"] for message in messages[:-1]]
    assert len(kept) == contents
    rows = store.search(limit=1000).records
    assert sorted(str(r.id) for r in rows) == sorted(kept)
    for record in rows:
        index = int(record.name.removeprefix("c")) % contents
        assert store.read_bytes(record.id) == f"content {index}".encode() * 1000
    journal.verify(journal.acme)
