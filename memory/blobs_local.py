"""The blob store on a local directory (by default ``$PLAN2FLOW_HOME/blobs``).

Layout and guarantees are :mod:`plan2flow.memory.blobs`'s. Here a put streams into
``<root>/<tenant>/tmp/<pid>-<random>.tmp`` while hashing, fsyncs it, renames it to
``<root>/<tenant>/sha256/<2 hex>/<digest>`` (the same filesystem: the rename is atomic) and
fsyncs that directory; a directory it creates is made durable in its parent too. Stored blobs
are read-only (0400) and their directories private (0700). The touch time is the file's mtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from . import blobs_pipeline
from .blobs import (
    ALGORITHM,
    BlobInfo,
    PutResult,
    Readable,
    VerifyingReader,
    blob_key,
    buffered,
    copy_chunks,
    fsync_directory,
    is_digest,
    temporary_name,
    temporary_prefix,
    write_all,
    write_checked,
    write_verified,
)
from .blobs_pipeline import Copy, file_copy, hash_behind, stream_copy
from .errors import BlobCorrupted, BlobNotFound, BlobStoreUnavailable
from .settings import check_tenant

_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
"""Read and write: the hashing thread reads a temporary back while it is written."""

SMALL_FILE = 4 << 20
"""Files up to this size are read whole and hashed before any write (no thread, no write at all
for stored content); above it, copying while hashing wins."""


@contextlib.contextmanager
def _storage_errors(location: object, *, missing: str | None = None) -> Iterator[None]:
    """OS errors of the store as project memory's: a missing blob (when ``missing`` says what
    was looked for) is BlobNotFound, anything else BlobStoreUnavailable."""
    try:
        yield
    except FileNotFoundError as error:
        if missing is not None:
            raise BlobNotFound(missing) from error
        raise BlobStoreUnavailable(f"{error.filename or location}: {error.strerror}") from error
    except OSError as error:
        reason = error.strerror or str(error)
        raise BlobStoreUnavailable(f"{error.filename or location}: {reason}") from error


def _discard(path: Path | str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class LocalBlobStore:
    """Blobs in a directory tree; see the module docstring for the layout."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().absolute()

    @property
    def url(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({self.url!r})"

    def path(self, tenant: str, digest: str) -> Path:
        """Where the blob is (or would be) stored."""
        return self.root / blob_key(tenant, digest)

    def _missing(self, tenant: str, digest: str) -> str:
        return f"no blob {digest} for tenant {tenant!r} in {self.root}"

    # -- writing -------------------------------------------------------------------------------

    def put_bytes(self, tenant: str, data: bytes) -> PutResult:
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(tenant, digest)
        with _storage_errors(self.root):
            if self._refresh(final, len(data)):
                return PutResult(digest, len(data), created=False)
            return self._write(tenant, lambda fd: (digest, self._copy_bytes(data, fd)))

    def put_stream(self, tenant: str, source: Readable) -> PutResult:
        with _storage_errors(self.root):
            if blobs_pipeline.OVERLAP:
                return self._write(tenant, lambda fd: self._hash_behind(fd, stream_copy(source)))
            return self._write(tenant, lambda fd: self._hash_in_turn(fd, source))

    def put_file(self, tenant: str, path: Path) -> PutResult:
        """A file of up to :data:`SMALL_FILE` bytes is hashed before anything is written, so a
        put of stored content writes nothing; a larger one is copied by the kernel while a
        second thread hashes the copy (see :mod:`~plan2flow.memory.blobs_pipeline`)."""
        with open(path, "rb", buffering=0) as source:
            stat = os.fstat(source.fileno())
            if S_ISREG(stat.st_mode) and stat.st_size <= SMALL_FILE:
                data = source.read(SMALL_FILE + 1)
                if len(data) <= SMALL_FILE and not source.read(1):
                    return self.put_bytes(tenant, data)
                source.seek(0)  # it grew meanwhile
            if not blobs_pipeline.OVERLAP:
                return self.put_stream(tenant, source)
            with _storage_errors(self.root):
                return self._write(
                    tenant, lambda fd: self._hash_behind(fd, file_copy(source.fileno()))
                )

    @staticmethod
    def _hash_behind(fd: int, copy: Copy) -> tuple[str, int]:
        """Copy and hash at once, the fsync overlapping the end of the hash."""
        return hash_behind(fd, copy, then=lambda: os.fsync(fd))

    @staticmethod
    def _hash_in_turn(fd: int, source: Readable) -> tuple[str, int]:
        """One thread (one core): each chunk read, hashed and written in turn, then fsync."""
        digest = hashlib.sha256()
        size = copy_chunks(source, digest.update, write_all(fd))
        os.fsync(fd)
        return digest.hexdigest(), size

    @staticmethod
    def _copy_bytes(data: bytes, fd: int) -> int:
        write_all(fd)(memoryview(data))
        os.fsync(fd)
        return len(data)

    def _write(self, tenant: str, fill: Callable[[int], tuple[str, int]]) -> PutResult:
        """Let ``fill`` write a new temporary and fsync it (returning the digest and size of what
        it wrote), then install it under its final name, unless the blob is already there: then
        only its touch time is refreshed and the temporary dropped."""
        directory = self.root / temporary_prefix(tenant)
        self._make_directory(directory)
        temporary = directory / temporary_name()
        fd = os.open(temporary, _CREATE, 0o600)
        try:
            try:
                os.fchmod(fd, 0o400)  # the descriptor stays writable
                digest, size = fill(fd)
            finally:
                os.close(fd)
            final = self.path(tenant, digest)
            if self._refresh(final, size):
                os.unlink(temporary)
                return PutResult(digest, size, created=False)
            self._make_directory(final.parent)
            os.rename(temporary, final)
            fsync_directory(final.parent)
            return PutResult(digest, size, created=True)
        except BaseException:
            _discard(temporary)
            raise

    @staticmethod
    def _refresh(final: Path, size: int | None) -> bool:
        """Touch ``final``; False when it is missing, or of another size than ``size`` (a
        damaged copy, which the caller's complete one then replaces)."""
        try:
            os.utime(final)
            return size is None or os.stat(final).st_size == size
        except FileNotFoundError:
            return False

    def _make_directory(self, directory: Path) -> None:
        """``mkdir -p`` with each new directory's entry fsync'd into its parent."""
        if directory.is_dir():
            return
        self._make_directory(directory.parent)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            return
        fsync_directory(directory.parent)

    # -- reading -------------------------------------------------------------------------------

    def get_bytes(self, tenant: str, digest: str) -> bytes:
        final = self.path(tenant, digest)
        with _storage_errors(final, missing=self._missing(tenant, digest)), open(final, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobCorrupted(f"{final}: corrupted, its bytes do not hash to {digest}")
        return data

    def _reader(self, tenant: str, digest: str) -> VerifyingReader:
        final = self.path(tenant, digest)
        with _storage_errors(final, missing=self._missing(tenant, digest)):
            raw = open(final, "rb", buffering=0)  # noqa: SIM115 (the reader closes it)
            size = os.fstat(raw.fileno()).st_size
        return VerifyingReader(raw, digest=digest, size=size, name=str(final))

    def open(self, tenant: str, digest: str) -> BinaryIO:
        return buffered(self._reader(tenant, digest))

    def copy_to(self, tenant: str, digest: str, destination: Path) -> int:
        """Above :data:`SMALL_FILE` on two cores, the kernel copies the blob to a temporary beside
        ``destination`` while a second thread hashes that temporary; below, one thread reads,
        hashes and writes each chunk (a thread would cost more than it saves). Either way the
        temporary is renamed only once digest and size match."""
        final = self.path(tenant, digest)
        with _storage_errors(final, missing=self._missing(tenant, digest)):
            source = open(final, "rb", buffering=0)  # noqa: SIM115 (closed below)
        with source:
            with _storage_errors(final):
                expected = os.fstat(source.fileno()).st_size
            if expected <= SMALL_FILE or not blobs_pipeline.OVERLAP:
                reader = VerifyingReader(source, digest=digest, size=expected, name=str(final))
                return write_verified(reader, destination)
            return write_checked(
                lambda fd: hash_behind(fd, file_copy(source.fileno())),
                destination,
                digest=digest,
                size=expected,
                name=str(final),
            )

    def exists(self, tenant: str, digest: str) -> bool:
        return self.path(tenant, digest).is_file()

    # -- collecting ----------------------------------------------------------------------------

    def touch(self, tenant: str, digest: str) -> bool:
        final = self.path(tenant, digest)
        with _storage_errors(final):
            return self._refresh(final, None)

    def delete(self, tenant: str, digest: str, *, untouched_since: float | None = None) -> bool:
        final = self.path(tenant, digest)
        with _storage_errors(final):
            if untouched_since is None:
                try:
                    os.unlink(final)
                except FileNotFoundError:
                    return False
                fsync_directory(final.parent)
                return True
            return self._delete_untouched(tenant, final, untouched_since)

    def _delete_untouched(self, tenant: str, final: Path, cutoff: float) -> bool:
        """Rename the blob aside, then look at its touch time: a put that touched it before
        the rename is seen (and the blob put back), a put after it finds no blob and writes
        its own copy. The aside name is a temporary, so a collector killed here leaves
        nothing that outlives the next collection."""
        try:
            if os.stat(final).st_mtime >= cutoff:
                return False
        except FileNotFoundError:
            return False
        directory = self.root / temporary_prefix(tenant)
        self._make_directory(directory)
        aside = directory / f"gc-{temporary_name()}"
        try:
            os.rename(final, aside)
        except FileNotFoundError:
            return False
        if os.stat(aside).st_mtime >= cutoff:
            os.rename(aside, final)  # the same bytes as any copy written since
            return False
        os.unlink(aside)
        fsync_directory(final.parent)
        return True

    def iter_blobs(self, tenant: str) -> Iterator[BlobInfo]:
        base = self.root / check_tenant(tenant) / ALGORITHM
        with _storage_errors(base):
            try:
                shards = sorted(entry.name for entry in os.scandir(base) if entry.is_dir())
            except FileNotFoundError:
                return
            for shard in shards:
                for name in sorted(os.listdir(base / shard)):
                    if not (is_digest(name) and name.startswith(shard)):
                        continue
                    try:
                        stat = os.stat(base / shard / name)
                    except FileNotFoundError:
                        continue  # deleted since the listing
                    yield BlobInfo(name, stat.st_size, stat.st_mtime)

    def collect_temporaries(self, tenant: str, *, untouched_since: float) -> list[str]:
        directory = self.root / temporary_prefix(tenant)
        removed = []
        with _storage_errors(directory):
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                return []
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_mtime < untouched_since:
                        os.unlink(entry.path)
                        removed.append(entry.name)
                except FileNotFoundError:
                    continue
            if removed:
                fsync_directory(directory)
        return sorted(removed)
