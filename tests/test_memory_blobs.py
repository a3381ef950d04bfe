"""The blob store: content addressed per tenant, written atomically, verified on every read, and
collectable without racing writers; on real local directories and on a real S3-speaking server
(moto's, on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from moto_s3 import CREDENTIALS, moto_server, new_bucket
from support import load_bench

from plan2flow.memory.blobs import (
    CHUNK_SIZE,
    BlobStore,
    age_cutoff,
    blob_key,
    blob_store,
    check_digest,
)
from plan2flow.memory.blobs_local import LocalBlobStore
from plan2flow.memory.blobs_s3 import SMALL, S3BlobStore
from plan2flow.memory.errors import (
    BlobCorrupted,
    BlobNotFound,
    BlobStoreUnavailable,
    TenantError,
)

ROOT = Path(__file__).resolve().parents[1]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


def s3_store(endpoint: str) -> S3BlobStore:
    return S3BlobStore(
        f"s3://{new_bucket(endpoint)}/memory/blobs", endpoint_url=endpoint, **CREDENTIALS
    )


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return s3_store(request.getfixturevalue("s3_endpoint"))


def overwrite(store: BlobStore, tenant: str, digest: str, data: bytes) -> None:
    """Damage a stored blob behind the store's back."""
    if isinstance(store, LocalBlobStore):
        path = store.path(tenant, digest)
        os.chmod(path, 0o600)
        path.write_bytes(data)
    else:
        assert isinstance(store, S3BlobStore)
        store._fs.pipe_file(f"{store.bucket}/{store.key(tenant, digest)}", data)


class OneWay(io.RawIOBase):
    """A stream that cannot seek and hands out a few odd-sized pieces at a time, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), 65_537, len(self._data))
        memoryview(buffer)[:count] = self._data[:count]
        self._data = self._data[count:]
        return count


# -- both backends ---------------------------------------------------------------------------


def test_put_and_get_by_content(store: BlobStore, tmp_path: Path) -> None:
    data = b"generated code\n" * 1000
    put = store.put_bytes("acme", data)
    assert (put.digest, put.size, put.created) == (sha(data), len(data), True)
    assert store.exists("acme", put.digest)
    assert store.get_bytes("acme", put.digest) == data
    with store.open("acme", put.digest) as stream:
        assert stream.read() == data
    assert store.copy_to("acme", put.digest, tmp_path / "copy") == len(data)
    assert (tmp_path / "copy").read_bytes() == data
    assert [(b.digest, b.size) for b in store.iter_blobs("acme")] == [(put.digest, len(data))]
    empty = store.put_bytes("acme", b"")
    assert empty.digest == sha(b"") and store.get_bytes("acme", empty.digest) == b""


def test_blobs_are_laid_out_per_tenant_by_digest(store: BlobStore) -> None:
    digest = store.put_bytes("acme", b"x").digest
    expected = f"acme/sha256/{digest[:2]}/{digest}"
    assert blob_key("acme", digest) == expected
    if isinstance(store, LocalBlobStore):
        assert store.path("acme", digest) == store.root / expected
        assert stat.S_IMODE(store.path("acme", digest).stat().st_mode) == 0o400
    else:
        assert isinstance(store, S3BlobStore)
        assert store.key("acme", digest) == f"memory/blobs/{expected}"


def test_identical_content_is_stored_once_per_tenant(store: BlobStore) -> None:
    data = os.urandom(4096)
    first = store.put_bytes("acme", data)
    again = store.put_bytes("acme", data)
    assert first.created and not again.created and again.digest == first.digest
    assert [b.digest for b in store.iter_blobs("acme")] == [first.digest]
    # Another tenant learns nothing: its put writes, and it sees none of acme's blobs.
    assert not store.exists("globex", first.digest)
    assert store.put_bytes("globex", data).created
    assert store.delete("acme", first.digest)
    assert store.get_bytes("globex", first.digest) == data
    assert not store.exists("acme", first.digest)


def test_streams_and_files_are_copied_in_chunks(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(SMALL + 3 * CHUNK_SIZE + 12345)  # past S3's one-request size
    put = store.put_stream("acme", OneWay(data))
    assert (put.digest, put.size, put.created) == (sha(data), len(data), True)
    source = tmp_path / "wheel.whl"
    source.write_bytes(data)
    again = store.put_file("acme", source)
    assert (again.digest, again.created) == (put.digest, False)
    with store.open("acme", put.digest) as stream:
        pieces = iter(lambda: stream.read(777_777), b"")
        assert hashlib.sha256(b"".join(pieces)).hexdigest() == put.digest
    store.copy_to("acme", put.digest, tmp_path / "out.whl")
    assert (tmp_path / "out.whl").read_bytes() == data
    assert store.collect_temporaries("acme", untouched_since=age_cutoff(-60)) == []


def test_a_second_put_refreshes_the_touch_time(store: BlobStore) -> None:
    data = b"cached result"
    digest = store.put_bytes("acme", data).digest

    def touched() -> float:
        return next(b.touched for b in store.iter_blobs("acme") if b.digest == digest)

    if isinstance(store, LocalBlobStore):
        old = time.time() - 3600
        os.utime(store.path("acme", digest), (old, old))
        assert not store.put_bytes("acme", data).created
        assert touched() > old + 3000
        os.utime(store.path("acme", digest), (old, old))
        assert store.touch("acme", digest) and touched() > old + 3000
    else:
        first = touched()  # S3 keeps whole seconds: put again until the second changes
        wait_until(
            lambda: not store.put_bytes("acme", data).created and touched() > first,
            10,
            "a newer LastModified",
        )
        assert store.touch("acme", digest)
    assert not store.touch("acme", sha(b"never stored"))


def test_delete_and_what_is_missing(store: BlobStore, tmp_path: Path) -> None:
    digest = store.put_bytes("acme", b"old log").digest
    assert store.delete("acme", digest)
    assert not store.delete("acme", digest)
    assert not store.exists("acme", digest)
    assert list(store.iter_blobs("acme")) == []
    with pytest.raises(BlobNotFound, match=digest):
        store.get_bytes("acme", digest)
    with pytest.raises(BlobNotFound):
        store.open("acme", digest)
    with pytest.raises(BlobNotFound):
        store.copy_to("acme", digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_collector_deletes_only_what_is_untouched_since_its_cutoff(store: BlobStore) -> None:
    digest = store.put_bytes("acme", b"report").digest
    assert not store.delete("acme", digest, untouched_since=age_cutoff(3600))
    assert store.exists("acme", digest)
    assert store.delete("acme", digest, untouched_since=age_cutoff(-60))
    assert not store.exists("acme", digest)


def test_a_corrupted_blob_is_never_returned(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 5)
    digest = store.put_bytes("acme", data).digest
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 1
    overwrite(store, "acme", digest, bytes(damaged))
    with pytest.raises(BlobCorrupted, match=digest):
        store.get_bytes("acme", digest)
    with pytest.raises(BlobCorrupted), store.open("acme", digest) as stream:
        stream.read(len(data))  # exactly the size: the last read is the one that fails
    (tmp_path / "out").mkdir()
    destination = tmp_path / "out" / "restored.bin"
    with pytest.raises(BlobCorrupted):
        store.copy_to("acme", digest, destination)
    assert os.listdir(tmp_path / "out") == []  # neither the file nor its temporary
    overwrite(store, "acme", digest, data[:-1])  # truncated
    with pytest.raises(BlobCorrupted):
        store.copy_to("acme", digest, destination)
    # A put of the right content repairs a blob of the wrong size.
    assert store.put_bytes("acme", data).created is isinstance(store, LocalBlobStore)


def test_names_are_checked_before_any_path_is_built(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound, match="not a sha256 digest"):
        store.get_bytes("acme", "../../etc/passwd")
    with pytest.raises(BlobNotFound):
        store.exists("acme", "AB" * 32)
    with pytest.raises(TenantError):
        store.put_bytes("../acme", b"x")
    with pytest.raises(TenantError):
        list(store.iter_blobs("Acme"))
    assert check_digest("ab" * 32) == "ab" * 32


# -- local directory -------------------------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from plan2flow.memory.blobs_local import LocalBlobStore
LocalBlobStore(Path(sys.argv[1])).put_stream("acme", sys.stdin.buffer)
"""


def test_a_writer_killed_mid_write_leaves_only_a_collectable_temporary(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], stdin=subprocess.PIPE, cwd=ROOT
    )
    try:
        assert writer.stdin is not None
        writer.stdin.write(os.urandom(3 * CHUNK_SIZE))  # and more would follow
        writer.stdin.flush()
        temporaries = root / "acme" / "tmp"

        def temporary_written() -> bool:
            files = list(temporaries.glob("*.tmp")) if temporaries.is_dir() else []
            return any(f.stat().st_size >= CHUNK_SIZE for f in files)

        wait_until(temporary_written, 60, "the writer's temporary file")
        writer.kill()
        assert writer.wait(30) == -9
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(30)
        if writer.stdin is not None:
            writer.stdin.close()
    store = LocalBlobStore(root)
    assert list(store.iter_blobs("acme")) == []
    assert not (root / "acme" / "sha256").exists() or not any((root / "acme" / "sha256").rglob("*"))
    (stale,) = temporaries.iterdir()
    assert store.collect_temporaries("acme", untouched_since=age_cutoff(3600)) == []
    assert store.collect_temporaries("acme", untouched_since=age_cutoff(0)) == [stale.name]
    assert list(temporaries.iterdir()) == []


def test_a_fresh_temporary_outlives_a_collection_with_a_grace_period(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    temporaries = tmp_path / "acme" / "tmp"
    temporaries.mkdir(parents=True)
    (temporaries / "123-abc.tmp").write_bytes(b"half")
    old = temporaries / "456-def.tmp"
    old.write_bytes(b"half")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert store.collect_temporaries("acme", untouched_since=age_cutoff(3600)) == [old.name]
    assert [p.name for p in temporaries.iterdir()] == ["123-abc.tmp"]


def test_a_collected_blob_is_written_again_by_the_next_put(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = store.put_bytes("acme", b"sbom").digest
    old = time.time() - 7200
    os.utime(store.path("acme", digest), (old, old))
    assert not store.delete("acme", digest, untouched_since=old)  # touched at the cutoff
    assert store.delete("acme", digest, untouched_since=age_cutoff(3600))
    assert list((tmp_path / "acme" / "tmp").iterdir()) == []  # nothing left aside
    assert store.put_bytes("acme", b"sbom").created


def test_a_store_that_cannot_be_written_says_so(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    with pytest.raises(BlobStoreUnavailable, match="not-a-directory"):
        LocalBlobStore(blocked).put_bytes("acme", b"x")
    assert list(LocalBlobStore(tmp_path / "none").iter_blobs("acme")) == []


def test_blob_store_chooses_the_backend_from_the_url(tmp_path: Path) -> None:
    assert isinstance(blob_store(str(tmp_path)), LocalBlobStore)
    local = blob_store(f"file://{tmp_path}/b")
    assert isinstance(local, LocalBlobStore) and local.url == str(tmp_path / "b")
    default = blob_store(environ={"PLAN2FLOW_HOME": str(tmp_path / "home")})
    assert default.url == str(tmp_path / "home" / "blobs")
    configured = blob_store(environ={"PLAN2FLOW_ARTIFACTS_URL": str(tmp_path / "elsewhere")})
    assert configured.url == str(tmp_path / "elsewhere")
    s3 = blob_store(
        "s3://bucket/team/blobs/", environ={"PLAN2FLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9"}
    )
    assert isinstance(s3, S3BlobStore) and s3.url == "s3://bucket/team/blobs"
    with pytest.raises(BlobStoreUnavailable, match="unsupported"):
        blob_store("ftp://host/blobs")


# -- S3 --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_s3_temporaries_and_unfinished_uploads_are_collected(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint)
    fs = store._fs
    prefix = f"{store.bucket}/memory/blobs/acme/tmp"
    fs.pipe_file(f"{prefix}/99-dead.tmp", b"left by a killed writer")
    upload = fs.open(f"{prefix}/98-dead.tmp", "wb", block_size=5 << 20)
    try:
        upload.write(os.urandom(6 << 20))
        upload.flush()  # one part sent: an unfinished multipart upload
    finally:
        upload.closed = True  # never completed, as if its writer had been killed
    kept = store.collect_temporaries("acme", untouched_since=age_cutoff(3600))
    assert "99-dead.tmp" not in kept  # young
    removed = kept + store.collect_temporaries("acme", untouched_since=age_cutoff(-60))
    assert sorted(removed) == ["98-dead.tmp (unfinished upload)", "99-dead.tmp"]
    assert fs.call_s3("list_multipart_uploads", Bucket=store.bucket).get("Uploads", []) == []
    assert fs.find(prefix) == []


@pytest.mark.slow
def test_s3_errors_are_the_stores(s3_endpoint: str) -> None:
    missing_bucket = S3BlobStore(
        "s3://no-such-bucket/blobs", endpoint_url=s3_endpoint, **CREDENTIALS
    )
    with pytest.raises(BlobStoreUnavailable, match="no-such-bucket"):
        missing_bucket.put_bytes("acme", b"x")
    unreachable = S3BlobStore(
        "s3://bucket/blobs",
        endpoint_url="http://127.0.0.1:9",
        config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 1},
        **CREDENTIALS,
    )
    with pytest.raises(BlobStoreUnavailable, match=r"127\.0\.0\.1:9"):
        unreachable.exists("acme", "ab" * 32)


def test_the_benchmark_runs_and_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/memory_blobs.py, tiny: one round of 1 MiB, a few envelope values."""
    bench = load_bench("memory_blobs")
    assert bench.main(["--sizes", "1", "--rounds", "1", "--values", "10"]) == 0
    report = json.loads(capsys.readouterr().out)
    figures = report["blobs"]["1MiB"]
    assert figures.keys() >= {"copyfile", "copyfile_fsync", "sha256", "put", "get", "ratios"}
    assert figures["put"]["mib_per_s"] > 0 and figures["ratios"]["get_over_copyfile"] > 0
    assert report["envelope"]["overhead_bytes"] == 90 + len("bench")
