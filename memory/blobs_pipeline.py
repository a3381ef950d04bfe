"""Hash and copy at once: a second thread hashes the file being written, a little behind it.

A put or a verified get must both copy the bytes and hash them. One after the other, per chunk,
that costs copy + hash. Here the calling thread copies (the kernel's ``copy_file_range`` or
``sendfile`` from a file; reads and writes from a stream) and says how far it got; a hashing
thread reads the destination back from the page cache up to there and hashes it. On two cores
a large blob costs about the longer of the two, and the copy's fsync overlaps the hash too.

The two never hand buffers to each other: the copy never waits for the hasher, the hasher waits
only when it has caught up with the copy, so a busy machine that deschedules one of them does
not stall the other (a ring of shared buffers did, measured: 1.5–2× slower than one thread on a
saturated machine). What is hashed is what was written, read back from the destination itself:
a source that changes during the copy cannot give a blob bytes other than its name's. Memory is
one chunk per side. Both sides run with the GIL released: ``hashlib`` drops it for updates over
2 KiB, ``os`` for every system call.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable

from .blobs import CHUNK_SIZE, Readable, write_all

KERNEL_STEP = 8 << 20
"""Bytes per ``copy_file_range``/``sendfile`` call: the hasher may start on the first 8 MiB
while the kernel copies the next; more calls would only add system calls."""

OVERLAP = len(os.sched_getaffinity(0)) >= 2 if hasattr(os, "sched_getaffinity") else True
"""Whether this process may run on two cores: on one, a second thread only adds its switches."""

Progress = Callable[[int], None]
"""Called by a copy with the number of bytes written so far, after each write."""

Copy = Callable[[int, Progress], object]
"""Writes into a file descriptor from offset 0, reporting its progress."""


class _Behind:
    """What the copy has written, for the hasher: a count and whether the copy is over."""

    def __init__(self) -> None:
        self.written = 0
        self.over = False
        self.changed = threading.Condition()

    def advance(self, written: int) -> None:
        with self.changed:
            self.written = written
            self.changed.notify()

    def finish(self) -> None:
        with self.changed:
            self.over = True
            self.changed.notify()

    def wait_past(self, offset: int) -> tuple[int, bool]:
        """Until more than ``offset`` bytes are written or the copy is over: the count, and
        whether it is final."""
        with self.changed:
            while self.written <= offset and not self.over:
                self.changed.wait()
            return self.written, self.over


def hash_behind(
    fd: int, copy: Copy, *, then: Callable[[], object] | None = None, chunk_size: int = CHUNK_SIZE
) -> tuple[str, int]:
    """Run ``copy`` into ``fd`` (open for reading too, at offset 0) while a thread hashes what it
    has written; then ``then`` (an fsync), still beside the hash. The sha256 of everything
    written and its size. An error on either side is raised once both have stopped."""
    progress = _Behind()
    digest = hashlib.sha256()
    failures: list[BaseException] = []
    hashed = 0

    def hash_written() -> None:
        nonlocal hashed
        buffer = bytearray(chunk_size)
        view = memoryview(buffer)
        try:
            while True:
                written, over = progress.wait_past(hashed)
                while hashed < written:
                    count = os.preadv(fd, [view[: min(chunk_size, written - hashed)]], hashed)
                    if not count:
                        raise OSError(f"the copy shrank to {hashed} bytes while being hashed")
                    digest.update(view[:count])
                    hashed += count
                if over:
                    return
        except BaseException as error:  # raised by the caller, once the copy is over
            failures.append(error)

    hasher = threading.Thread(target=hash_written, name="blob-hasher", daemon=True)
    hasher.start()
    size = 0

    def advance(written: int) -> None:
        nonlocal size
        size = written
        progress.advance(written)

    try:
        copy(fd, advance)
        progress.finish()
        if then is not None:
            then()
    finally:
        progress.finish()
        hasher.join()
    if failures:
        raise failures[0]
    return digest.hexdigest(), size


def stream_copy(source: Readable) -> Copy:
    """A copy of everything ``source`` yields, through one reused buffer."""

    def copy(fd: int, progress: Progress) -> None:
        write = write_all(fd)
        written = 0
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        readinto = getattr(source, "readinto", None)
        while True:
            if readinto is not None:
                chunk = view[: readinto(buffer) or 0]
            else:
                chunk = memoryview(source.read(CHUNK_SIZE) or b"")
            if not chunk:
                return
            write(chunk)
            written += len(chunk)
            progress(written)

    return copy


def file_copy(source_fd: int) -> Copy:
    """A copy of the file at ``source_fd`` (from its current position) by the kernel:
    ``copy_file_range`` (no bytes through user space; a reflink where the filesystem has them),
    else ``sendfile``, else reads and writes."""

    def copy(fd: int, progress: Progress) -> None:
        written = 0
        for kernel_copy in _KERNEL_COPIES:
            try:
                while count := kernel_copy(source_fd, fd, KERNEL_STEP):
                    written += count
                    progress(written)
                return
            except OSError as error:
                if written or error.errno not in _UNSUPPORTED:
                    raise
        with os.fdopen(source_fd, "rb", buffering=0, closefd=False) as source:
            stream_copy(source)(fd, progress)

    return copy


def _copy_file_range(source: int, target: int, count: int) -> int:
    return os.copy_file_range(source, target, count)


def _sendfile(source: int, target: int, count: int) -> int:
    return os.sendfile(target, source, None, count)


_KERNEL_COPIES: list[Callable[[int, int, int], int]] = []
if hasattr(os, "copy_file_range"):
    _KERNEL_COPIES.append(_copy_file_range)
if hasattr(os, "sendfile"):
    _KERNEL_COPIES.append(_sendfile)

_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}
"""What a kernel copy raises, before any byte, when it cannot copy between these two files."""
