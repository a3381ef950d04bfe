"""The blob store on S3-compatible storage (``s3://bucket/prefix``) through s3fs.

Layout and guarantees are :mod:`plan2flow.memory.blobs`'s, with keys in place of paths. An S3
object appears whole or not at all, so a put of up to :data:`SMALL` bytes goes in one request
straight to its final key. A larger stream is uploaded in parts to a temporary key under
``<prefix>/<tenant>/tmp/`` while it is hashed, then copied server-side to its final key and the
temporary deleted. A writer killed mid-upload leaves an unfinished multipart upload (invisible,
but billed) or a temporary object; :meth:`S3BlobStore.collect_temporaries` aborts and deletes
those once they are old (a bucket lifecycle rule aborting incomplete uploads does it too).

The touch time is the object's LastModified (whole seconds), refreshed by copying the object
onto itself; S3 cannot copy an object over 5 GB in one request, so such a blob's touch fails
with BlobStoreUnavailable. Listings are never cached: another machine may have written.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import s3fs  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped]

from .blobs import (
    BlobInfo,
    PutResult,
    Readable,
    VerifyingReader,
    blob_key,
    buffered,
    copy_chunks,
    is_digest,
    temporary_name,
    temporary_prefix,
    write_verified,
)
from .errors import BlobCorrupted, BlobNotFound, BlobStoreUnavailable, MemoryStoreError
from .settings import check_tenant

SMALL = 8 << 20
"""Puts up to this many bytes are read into memory and sent in one request."""
PART_SIZE = 8 << 20
"""The part size of multipart uploads (S3's minimum is 5 MiB) and of ranged reads."""


@contextlib.contextmanager
def _s3_errors(location: str, *, missing: str | None = None) -> Iterator[None]:
    """s3fs and botocore errors as project memory's: a missing object (when ``missing`` says
    what was looked for) is BlobNotFound, anything else BlobStoreUnavailable."""
    try:
        yield
    except MemoryStoreError:
        raise
    except FileNotFoundError as error:
        if missing is not None:
            raise BlobNotFound(missing) from error
        raise BlobStoreUnavailable(f"{location}: {error}") from error
    except (OSError, BotoCoreError) as error:
        raise BlobStoreUnavailable(f"{location}: {error}") from error


def _read_up_to(source: Readable, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``source``: fewer only at its end."""
    parts, size = [], 0
    while size < limit:
        data = source.read(limit - size) or b""
        if not data:
            break
        parts.append(data)
        size += len(data)
    return b"".join(parts)


class S3BlobStore:
    """Blobs in an S3 bucket under a prefix; ``storage_options`` go to ``s3fs.S3FileSystem``
    (credentials, ``client_kwargs``, ``config_kwargs``)."""

    def __init__(
        self, url: str, *, endpoint_url: str | None = None, **storage_options: Any
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise BlobStoreUnavailable(f"{url!r} is not an s3://bucket/prefix URL")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        options: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
        if endpoint_url:
            options["endpoint_url"] = endpoint_url
        options.update(storage_options)
        self._fs = s3fs.S3FileSystem(**options)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def __repr__(self) -> str:
        return f"S3BlobStore({self.url!r})"

    def key(self, tenant: str, digest: str) -> str:
        """The object key of a blob."""
        return self._key(blob_key(tenant, digest))

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _call(self, method: str, **kwargs: Any) -> Any:
        return self._fs.call_s3(method, Bucket=self.bucket, **kwargs)

    def _missing(self, tenant: str, digest: str) -> str:
        return f"no blob {digest} for tenant {tenant!r} in {self.url}"

    # -- writing -------------------------------------------------------------------------------

    def put_bytes(self, tenant: str, data: bytes) -> PutResult:
        digest = hashlib.sha256(data).hexdigest()
        key = self.key(tenant, digest)
        with _s3_errors(self.url):
            if self._touch_key(key):
                return PutResult(digest, len(data), created=False)
            self._fs.pipe_file(f"{self.bucket}/{key}", bytes(data))
        return PutResult(digest, len(data), created=True)

    def put_stream(self, tenant: str, source: Readable) -> PutResult:
        first = _read_up_to(source, SMALL)
        if len(first) < SMALL:
            return self.put_bytes(tenant, first)
        temporary = self._key(f"{temporary_prefix(tenant)}/{temporary_name()}")
        with _s3_errors(self.url):
            try:
                digest = hashlib.sha256(first)
                size = len(first) + self._upload(temporary, first, source, digest)
                key = self.key(tenant, digest.hexdigest())
                created = not self._touch_key(key)
                if created:
                    self._fs.copy(f"{self.bucket}/{temporary}", f"{self.bucket}/{key}")
            finally:
                with contextlib.suppress(FileNotFoundError):
                    self._call("delete_object", Key=temporary)
        return PutResult(digest.hexdigest(), size, created=created)

    def _upload(self, key: str, first: bytes, source: Readable, digest: Any) -> int:
        """Upload ``first`` then the rest of ``source`` to ``key`` in parts, hashing the rest;
        the bytes of the rest. On failure the multipart upload is aborted, not completed."""
        sink = self._fs.open(f"{self.bucket}/{key}", "wb", block_size=PART_SIZE)
        try:
            sink.write(first)
            size = copy_chunks(source, digest.update, sink.write)
        except BaseException:
            with contextlib.suppress(Exception):
                sink.discard()
            sink.closed = True  # nothing left to complete
            raise
        sink.close()
        return size

    def put_file(self, tenant: str, path: Path) -> PutResult:
        with open(path, "rb", buffering=0) as source:
            return self.put_stream(tenant, source)

    def _touch_key(self, key: str) -> bool:
        """Refresh an object's LastModified by copying it onto itself; False if it is gone."""
        try:
            self._call(
                "copy_object",
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
            )
        except FileNotFoundError:
            return False
        return True

    # -- reading -------------------------------------------------------------------------------

    def get_bytes(self, tenant: str, digest: str) -> bytes:
        key = self.key(tenant, digest)
        with _s3_errors(self.url, missing=self._missing(tenant, digest)):
            data: bytes = self._fs.cat_file(f"{self.bucket}/{key}")
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobCorrupted(f"{self.url}/{key}: corrupted, its bytes do not hash to {digest}")
        return data

    def _reader(self, tenant: str, digest: str) -> VerifyingReader:
        key = self.key(tenant, digest)
        with _s3_errors(self.url, missing=self._missing(tenant, digest)):
            raw = self._fs.open(
                f"{self.bucket}/{key}", "rb", block_size=PART_SIZE, cache_type="readahead"
            )
        return VerifyingReader(
            raw,
            digest=digest,
            size=raw.size,
            name=f"{self.url}/{key}",
            errors=lambda: _s3_errors(self.url),
        )

    def open(self, tenant: str, digest: str) -> BinaryIO:
        return buffered(self._reader(tenant, digest))

    def copy_to(self, tenant: str, digest: str, destination: Path) -> int:
        return write_verified(self._reader(tenant, digest), destination)

    def exists(self, tenant: str, digest: str) -> bool:
        with _s3_errors(self.url):
            return self._head(self.key(tenant, digest)) is not None

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._call("head_object", Key=key)
        except FileNotFoundError:
            return None
        return head

    # -- collecting ----------------------------------------------------------------------------

    def touch(self, tenant: str, digest: str) -> bool:
        with _s3_errors(self.url):
            return self._touch_key(self.key(tenant, digest))

    def delete(self, tenant: str, digest: str, *, untouched_since: float | None = None) -> bool:
        key = self.key(tenant, digest)
        with _s3_errors(self.url):
            head = self._head(key)
            if head is None:
                return False
            if untouched_since is not None and head["LastModified"].timestamp() >= untouched_since:
                return False
            self._call("delete_object", Key=key)
        return True

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object under ``prefix``, one listing page at a time."""
        arguments: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = self._call("list_objects_v2", **arguments)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            arguments["ContinuationToken"] = page["NextContinuationToken"]

    def iter_blobs(self, tenant: str) -> Iterator[BlobInfo]:
        prefix = self._key(f"{check_tenant(tenant)}/sha256/")
        with _s3_errors(self.url):
            for item in self._objects(prefix):
                name = item["Key"].rsplit("/", 1)[-1]
                if is_digest(name) and item["Key"] == self._key(blob_key(tenant, name)):
                    yield BlobInfo(name, int(item["Size"]), item["LastModified"].timestamp())

    def collect_temporaries(self, tenant: str, *, untouched_since: float) -> list[str]:
        prefix = self._key(f"{temporary_prefix(tenant)}/")
        removed = []
        with _s3_errors(self.url):
            for item in list(self._objects(prefix)):
                if item["LastModified"].timestamp() < untouched_since:
                    with contextlib.suppress(FileNotFoundError):
                        self._call("delete_object", Key=item["Key"])
                    removed.append(item["Key"].removeprefix(prefix))
            uploads = self._call("list_multipart_uploads", Prefix=prefix).get("Uploads", [])
            for upload in uploads:
                if upload["Initiated"].timestamp() < untouched_since:
                    with contextlib.suppress(FileNotFoundError):
                        self._call(
                            "abort_multipart_upload", Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    removed.append(upload["Key"].removeprefix(prefix) + " (unfinished upload)")
        return sorted(removed)
