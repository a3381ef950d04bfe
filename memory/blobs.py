"""Content-addressed blobs, namespaced per tenant, on a local directory or S3-compatible storage.

A blob is named by the sha256 of its bytes (64 lowercase hex digits, ``ArtifactRecord.digest``)
and lives at ``<root>/<tenant>/sha256/<first 2 hex>/<digest>``. Each tenant has a namespace of
its own: identical content is stored once per tenant, and no tenant can learn from a cheap put
that another already holds the same bytes. :func:`blob_store` chooses the backend from a URL:
a directory (``$PLAN2FLOW_HOME/blobs`` by default) or ``s3://bucket/prefix``.

Writes never show a partial blob under its final name. The bytes go to a temporary name under
``<root>/<tenant>/tmp/`` while they are hashed (the digest, hence the final name, is known only
after the last byte); locally the temporary file is fsync'd, renamed to its final name and the
directory fsync'd. A writer killed mid-write leaves only a temporary, which
:meth:`BlobStore.collect_temporaries` removes once it is old. Reads verify: a blob whose bytes no
longer hash to its name raises :class:`~plan2flow.memory.errors.BlobCorrupted`.

Garbage collection never races a writer
---------------------------------------
Every put *touches* its blob: a new blob carries the time of its write, and a put of content
already stored refreshes that time (the file's mtime; an S3 object's LastModified, by copying it
onto itself) instead of writing it again. :meth:`BlobStore.touch` does the same for a writer that
adds a reference to a blob it did not put. A collector with a grace period ``grace``:

1. takes ``cutoff = now - grace``, *then* reads the digests that are referenced (the artifact
   rows of the tenant);
2. deletes each stored blob (:meth:`BlobStore.iter_blobs`) that is unreferenced *and* untouched
   since ``cutoff``, with ``delete(tenant, digest, untouched_since=cutoff)``, which re-checks the
   touch time at the last moment (locally after renaming the blob aside: a put that touches it
   first puts it back, a put that comes after finds it gone and writes it again);
3. removes temporaries untouched since ``cutoff`` (writers killed mid-write).

A writer commits its reference within ``grace`` of its put or touch. Then a blob that a
committed reference needs was either referenced when the collector looked, or touched after
``cutoff``: it is never deleted. On S3, which cannot rename, a touch that lands between the
collector's last check and its delete (one request's time) is lost; a writer that cannot afford
that checks :meth:`BlobStore.exists` after committing and puts the blob again if it is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol
from urllib.parse import urlsplit

from .errors import BlobCorrupted, BlobNotFound, BlobStoreUnavailable
from .settings import check_tenant

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

ALGORITHM = "sha256"
CHUNK_SIZE = 1 << 20
"""Bytes per read and write when copying: large enough that Python's per-call cost vanishes
next to hashing (measured: 1 MiB and 4 MiB copy 64 MB equally fast)."""

S3_ENDPOINT_ENV = "PLAN2FLOW_S3_ENDPOINT_URL"
AWS_ENDPOINT_ENV = "AWS_ENDPOINT_URL"

_DIGEST = re.compile(r"^[0-9a-f]{64}$")

Readable = BinaryIO | io.RawIOBase
"""What a put reads from: a binary file or stream, or a raw reader such as
:class:`~plan2flow.memory.crypto_stream.EncryptingReader`."""


@dataclass(frozen=True)
class PutResult:
    """A stored blob: its digest and size, and whether this put wrote it (False: it was
    already stored, and the put only refreshed its touch time)."""

    digest: str
    size: int
    created: bool


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob as a collector sees it; ``touched`` is seconds since the epoch."""

    digest: str
    size: int
    touched: float


class BlobStore(Protocol):
    """Where artifact bytes live; every method is scoped to one tenant's namespace."""

    @property
    def url(self) -> str:
        """The store's location (a directory, or ``s3://bucket/prefix``)."""
        ...

    def put_bytes(self, tenant: str, data: bytes) -> PutResult:
        """Store ``data`` (or refresh the touch time of the blob that already holds it)."""
        ...

    def put_stream(self, tenant: str, source: Readable) -> PutResult:
        """Store everything ``source`` yields, hashing while copying in chunks."""
        ...

    def put_file(self, tenant: str, path: Path) -> PutResult:
        """Store the bytes of the file at ``path``, in chunks, never whole in memory."""
        ...

    def get_bytes(self, tenant: str, digest: str) -> bytes:
        """The blob's bytes, verified against its digest."""
        ...

    def open(self, tenant: str, digest: str) -> BinaryIO:
        """A stream of the blob that raises BlobCorrupted by the time its last byte is read."""
        ...

    def copy_to(self, tenant: str, digest: str, destination: Path) -> int:
        """Write the blob to ``destination`` (replaced only once verified); its size."""
        ...

    def exists(self, tenant: str, digest: str) -> bool: ...

    def touch(self, tenant: str, digest: str) -> bool:
        """Refresh the blob's touch time, for a new reference to it; False if it is gone."""
        ...

    def delete(self, tenant: str, digest: str, *, untouched_since: float | None = None) -> bool:
        """Delete the blob, with ``untouched_since`` only if not touched since then; whether
        it was deleted."""
        ...

    def iter_blobs(self, tenant: str) -> Iterator[BlobInfo]:
        """Every stored blob of the tenant with its touch time (temporaries excluded)."""
        ...

    def collect_temporaries(self, tenant: str, *, untouched_since: float) -> list[str]:
        """Remove the tenant's temporaries untouched since ``untouched_since``; their names."""
        ...


def check_digest(digest: str) -> str:
    """``digest`` when it names a blob (64 lowercase hex digits), else BlobNotFound.

    >>> check_digest("../etc/passwd")
    Traceback (most recent call last):
    ...
    plan2flow.memory.errors.BlobNotFound: '../etc/passwd' is not a sha256 digest (64 lowercase hex)
    """
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise BlobNotFound(f"{digest!r} is not a sha256 digest (64 lowercase hex)")
    return digest


def blob_key(tenant: str, digest: str) -> str:
    """Where a blob lives below the store's root; both names are checked first.

    >>> blob_key("acme", "ab" * 32)
    'acme/sha256/ab/abababababababababababababababababababababababababababababababab'
    """
    digest = check_digest(digest)
    return f"{check_tenant(tenant)}/{ALGORITHM}/{digest[:2]}/{digest}"


def temporary_prefix(tenant: str) -> str:
    """Where a tenant's temporaries live below the store's root: anything there is one."""
    return f"{check_tenant(tenant)}/tmp"


def temporary_name() -> str:
    """A fresh temporary's name; the writer's pid helps whoever finds it stale."""
    return f"{os.getpid()}-{os.urandom(8).hex()}.tmp"


def is_digest(name: str) -> bool:
    return bool(_DIGEST.fullmatch(name))


def copy_chunks(source: Readable, *sinks: Callable[[memoryview], object]) -> int:
    """Feed everything ``source`` yields to each sink in turn (a hash's ``update``, a writer),
    in chunks of :data:`CHUNK_SIZE` through one reused buffer; the number of bytes."""
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    readinto = getattr(source, "readinto", None)
    size = 0
    while True:
        if readinto is not None:
            count = readinto(buffer) or 0
            chunk = view[:count]
        else:
            data = source.read(CHUNK_SIZE) or b""
            count, chunk = len(data), memoryview(data)
        if not count:
            return size
        for sink in sinks:
            sink(chunk)
        size += count


class VerifyingReader(io.RawIOBase):
    """Reads a blob and checks it against its digest and size as the last byte goes by: the
    read that completes it (or finds it short) raises BlobCorrupted instead of returning.
    ``errors`` wraps each read of ``raw`` (the backend's translation of its errors)."""

    def __init__(
        self,
        raw: BinaryIO,
        *,
        digest: str,
        size: int,
        name: str,
        errors: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._errors = errors
        self._readinto = getattr(raw, "readinto", None)
        self._expected = digest
        self._size = size
        self._name = name
        self._hash = hashlib.sha256()
        self._seen = 0
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        with self._errors():
            if self._readinto is not None:
                count = self._readinto(view) or 0
            else:
                data = self._raw.read(len(view))
                count = len(data)
                view[:count] = data
        if count:
            self._hash.update(view[:count])
            self._seen += count
        if not count or self._seen >= self._size:
            self._verify()
        return count

    def _verify(self) -> None:
        if not self._verified:
            complete = self._seen == self._size
            self._verified = complete and self._hash.hexdigest() == self._expected
        if not self._verified or self._seen != self._size:
            raise BlobCorrupted(
                f"{self._name}: corrupted, its {self._seen} bytes (of {self._size}) do not hash "
                f"to {self._expected}"
            )

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def buffered(reader: VerifyingReader) -> BinaryIO:
    return io.BufferedReader(reader, buffer_size=CHUNK_SIZE)


def write_verified(reader: VerifyingReader, destination: Path) -> int:
    """Copy a verifying reader to ``destination`` through a temporary beside it, renamed only
    once the whole blob has verified: a corrupted blob never lands there. Its size."""
    with reader:
        return _write_beside(destination, lambda fd: copy_chunks(reader, write_all(fd)))


def write_checked(
    copy: Callable[[int], tuple[str, int]],
    destination: Path,
    *,
    digest: str,
    size: int,
    name: str,
) -> int:
    """Let ``copy`` write a blob into a temporary beside ``destination`` (a descriptor open for
    reading too), returning the sha256 and size of what it wrote; rename it there only if both
    match ``digest`` and ``size``, else BlobCorrupted and no destination. Its size."""

    def checked(fd: int) -> int:
        seen, count = copy(fd)
        if seen != digest or count != size:
            raise BlobCorrupted(
                f"{name}: corrupted, its {count} bytes (of {size}) do not hash to {digest}"
            )
        return count

    return _write_beside(destination, checked)


def _write_beside(destination: Path, fill: Callable[[int], int]) -> int:
    """Run ``fill`` on a new temporary beside ``destination``, then rename it into place; on
    any error (a corrupted blob included) the temporary goes."""
    temporary = destination.with_name(f".{destination.name}.{os.urandom(6).hex()}.part")
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            size = fill(fd)
        finally:
            os.close(fd)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return size


def write_all(fd: int) -> Callable[[memoryview], None]:
    """A writer to a file descriptor that retries short writes."""

    def write(chunk: memoryview) -> None:
        while chunk:
            chunk = chunk[os.write(fd, chunk) :]

    return write


def fsync_directory(directory: Path | str) -> None:
    """Make a rename or an unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def age_cutoff(grace_seconds: float) -> float:
    """The ``untouched_since`` of a collection with a grace period of ``grace_seconds``."""
    return time.time() - grace_seconds


def blob_store(url: str | None = None, *, environ: Mapping[str, str] | None = None) -> BlobStore:
    """The store at ``url``: ``s3://bucket/prefix`` (endpoint from ``PLAN2FLOW_S3_ENDPOINT_URL``
    or ``AWS_ENDPOINT_URL``, credentials the usual AWS way) or a directory (a path or
    ``file://``); by default ``PLAN2FLOW_ARTIFACTS_URL``, else ``$PLAN2FLOW_HOME/blobs``."""
    env = os.environ if environ is None else environ
    if url is None:
        from .settings import memory_settings

        url = memory_settings(env).artifacts_url
    scheme = urlsplit(url).scheme
    if scheme == "s3":
        from .blobs_s3 import S3BlobStore

        endpoint = env.get(S3_ENDPOINT_ENV) or env.get(AWS_ENDPOINT_ENV) or None
        return S3BlobStore(url, endpoint_url=endpoint)
    if scheme in ("", "file"):
        from .blobs_local import LocalBlobStore

        return LocalBlobStore(Path(urlsplit(url).path if scheme else url).expanduser())
    raise BlobStoreUnavailable(
        f"unsupported artifacts URL {url!r}: use a directory or s3://bucket/prefix"
    )
