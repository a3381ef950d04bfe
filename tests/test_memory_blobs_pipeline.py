"""Copying while a second thread hashes the copy: every size around a chunk's edges, the kernel
copies and their fallbacks, errors on either side, and the local store's paths that use it
(corruption found across several kernel copies, stored content written or not)."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from plan2flow.memory import blobs_local, blobs_pipeline
from plan2flow.memory.blobs_local import SMALL_FILE, LocalBlobStore
from plan2flow.memory.blobs_pipeline import Copy, file_copy, hash_behind, stream_copy
from plan2flow.memory.errors import BlobCorrupted

CHUNK = 4096
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "blob-hasher"]


def copy_into(path: Path, copy: Copy) -> tuple[str, int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        return hash_behind(fd, copy, chunk_size=CHUNK)
    finally:
        os.close(fd)


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernel copies of 3 KiB, so that the hasher's 4 KiB reads straddle them."""
    monkeypatch.setattr(blobs_pipeline, "KERNEL_STEP", 3 * 1024)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["file", "stream"])
def test_what_is_hashed_is_what_was_written(
    size: int, kind: str, tmp_path: Path, small_steps: None
) -> None:
    data = os.urandom(size)
    (tmp_path / "source").write_bytes(data)
    with open(tmp_path / "source", "rb", buffering=0) as source:
        copy = file_copy(source.fileno()) if kind == "file" else stream_copy(source)
        assert copy_into(tmp_path / "copy", copy) == (sha(data), size)
    assert (tmp_path / "copy").read_bytes() == data
    assert hashers() == []


@pytest.mark.parametrize("unsupported", [[errno.EXDEV], [errno.EXDEV, errno.EINVAL]])
def test_a_kernel_copy_that_cannot_falls_back(
    unsupported: list[int], tmp_path: Path, small_steps: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """copy_file_range refused (across filesystems on an old kernel), then sendfile too."""

    def refusing(code: int) -> Callable[[int, int, int], int]:
        def kernel_copy(source: int, target: int, count: int) -> int:
            raise OSError(code, os.strerror(code))

        return kernel_copy

    kept = blobs_pipeline._KERNEL_COPIES[len(unsupported) :]
    monkeypatch.setattr(
        blobs_pipeline, "_KERNEL_COPIES", [refusing(code) for code in unsupported] + kept
    )
    data = os.urandom(3 * CHUNK + 5)
    (tmp_path / "source").write_bytes(data)
    with open(tmp_path / "source", "rb", buffering=0) as source:
        assert copy_into(tmp_path / "copy", file_copy(source.fileno())) == (sha(data), len(data))
    assert (tmp_path / "copy").read_bytes() == data


def test_a_copy_that_fails_stops_the_hasher_and_raises(tmp_path: Path) -> None:
    def failing(fd: int, progress: blobs_pipeline.Progress) -> None:
        os.write(fd, b"x" * (2 * CHUNK))
        progress(2 * CHUNK)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        copy_into(tmp_path / "copy", failing)
    assert hashers() == []


def test_a_hasher_that_cannot_read_back_fails_the_copy(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK)
    fd = os.open(tmp_path / "copy", os.O_WRONLY | os.O_CREAT, 0o600)  # not readable
    try:
        with pytest.raises(OSError) as raised:
            hash_behind(fd, stream_copy(_Bytes(data)), chunk_size=CHUNK)
    finally:
        os.close(fd)
    assert raised.value.errno == errno.EBADF
    assert hashers() == []


class _Bytes:
    """A source with only ``read``, handing out two bytes objects."""

    def __init__(self, data: bytes) -> None:
        self._pieces = [data[: len(data) // 2], data[len(data) // 2 :]]

    def read(self, size: int = -1) -> bytes:
        return self._pieces.pop(0) if self._pieces else b""


@pytest.mark.parametrize(
    ("small_file", "overlap"),
    [(CHUNK, True), (1 << 30, True), (CHUNK, False)],
    ids=["two threads", "small, one thread", "one core"],
)
def test_copy_to_finds_corruption_across_several_kernel_copies(
    small_file: int,
    overlap: bool,
    tmp_path: Path,
    small_steps: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blobs_local, "SMALL_FILE", small_file)
    monkeypatch.setattr(blobs_pipeline, "OVERLAP", overlap)
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(5 * CHUNK + 7)
    digest = store.put_bytes("acme", data).digest
    (tmp_path / "out").mkdir()
    destination = tmp_path / "out" / "restored"
    assert store.copy_to("acme", digest, destination) == len(data)
    assert destination.read_bytes() == data
    path = store.path("acme", digest)
    for damaged in (data[:-1] + bytes([data[-1] ^ 1]), data + b"!"):  # the last byte; one more
        os.chmod(path, 0o600)
        path.write_bytes(damaged)
        destination.unlink(missing_ok=True)
        with pytest.raises(BlobCorrupted, match=digest):
            store.copy_to("acme", digest, destination)
        assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("overlap", [True, False], ids=["two cores", "one core"])
@pytest.mark.parametrize("size", [SMALL_FILE, SMALL_FILE + 1])
def test_put_file_of_stored_content_leaves_nothing_behind(
    size: int, overlap: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to SMALL_FILE hashed first (nothing written), above it copied and hashed at once, or
    in turn on one core (the temporary dropped): either way one blob, its digest, no
    temporary, and no hashing thread on one core."""
    monkeypatch.setattr(blobs_pipeline, "OVERLAP", overlap)
    started = threading.Thread.start
    threads: list[str] = []

    def start(thread: threading.Thread) -> None:
        threads.append(thread.name)
        started(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    store = LocalBlobStore(tmp_path / "blobs")
    source = tmp_path / "source"
    source.write_bytes(os.urandom(size))
    first = store.put_file("acme", source)
    assert (first.digest, first.size, first.created) == (sha(source.read_bytes()), size, True)
    assert store.path("acme", first.digest).read_bytes() == source.read_bytes()
    again = store.put_file("acme", source)
    assert (again.digest, again.created) == (first.digest, False)
    assert os.listdir(tmp_path / "blobs" / "acme" / "tmp") == []
    assert [blob.digest for blob in store.iter_blobs("acme")] == [first.digest]
    assert threads == (["blob-hasher"] * 2 if overlap and size > SMALL_FILE else [])
