"""The artifact store: blobs in the blob store, their metadata in the database, one tenant each.

::

    with open_artifact_store() as store:                     # from the environment
        record = store.put(Path("dist/"), producer=Producer(plan="etl", task_id="build"))
        store.materialize(record.id, Path("/tmp/dist"))      # or by content digest
        page = store.search(plan="etl", kind="directory", limit=20)

A put writes the **blob first** (which refreshes its touch time when the content is already
stored), **then** the row and its ``artifact.stored`` audit entry in one transaction: a writer
killed in between leaves an unreferenced blob that garbage collection removes after the grace
period, never a row without its blob. Garbage collection (:meth:`ArtifactStore.gc`) deletes only
blobs that no row references *and* that nobody touched for the grace period, and reads the
references after taking its cutoff, so it never races a writer that commits within the grace
period of its put (see :mod:`plan2flow.memory.blobs`).

A directory is stored as a deterministic tar (kind ``directory``; the same tree always gives the
same digest) and unpacked safely. A sensitive artifact is encrypted with the blob split form:
the blob holds the ciphertext, the row its wrapped data key (``key_id``, ``wrapped_key``), so
``content_digest`` (the sha256 of the plaintext) is the digest to compare contents by.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlmodel import Session, col, select

from plan2flow.events import EventBus, new_event

from . import audit
from .artifact_gc import GcReport, collect
from .artifact_meta import Producer, check_kind, expiry, guess_media_type
from .artifact_query import ArtifactPage, ArtifactQuery, check_labels, make_page, page_statement
from .artifact_tree import TAR_MEDIA_TYPE, extract_tree, replace_directory, write_tree
from .blobs import BlobStore, PutResult, age_cutoff, blob_store
from .crypto import WrappedKey, value_context
from .crypto_stream import EncryptingReader, decrypt_stream, decrypt_to_file
from .db.engine import Database, configured_database
from .db.models import ArtifactRecord, utc_now
from .errors import ArtifactNotFound, BlobCorrupted, BlobStoreUnavailable, MemoryStoreError
from .keyring import Keyring, load_keyring
from .settings import KEYS_FILE_ENV, MASTER_KEY_ENV, MemorySettings, check_tenant, memory_settings

DEFAULT_GRACE = dt.timedelta(hours=1)
"""How long an unreferenced blob is kept after its last touch: a writer commits its row within
this time of its put, so garbage collection never deletes a blob a commit is about to need."""
CONTENT_CONTEXT = "artifacts.content"
"""The column part of an encrypted blob's context: ``artifacts.content:<tenant>``."""
DIRECTORY = "directory"
DELETE_BATCH = 500

ArtifactRef = uuid.UUID | str | ArtifactRecord
"""An artifact by its id, its digest (stored or content), or its record."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class _Stored:
    """A blob written for a put: what the row records of it."""

    put: PutResult
    content_digest: str
    size: int
    key: WrappedKey | None


class ArtifactStore:
    """Artifacts of one tenant: :meth:`put`, :meth:`show`, :meth:`search`, :meth:`materialize`,
    :meth:`read_bytes`, :meth:`delete`, :meth:`gc`. Build with :func:`open_artifact_store`.

    ``keys`` gives the master keys when an artifact is sensitive (a keyring, or a function
    that loads it on first use); ``bus``, when given, gets one ``plan2flow.artifact.stored``
    per put, after its commit; ``scratch`` is where a directory's tar is staged.
    """

    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        *,
        tenant: str,
        keys: Keyring | Callable[[], Keyring] | None = None,
        bus: EventBus | None = None,
        scratch: Path | None = None,
        owns_database: bool = False,
    ) -> None:
        self.database = database
        self.blobs = blobs
        self.tenant = check_tenant(tenant)
        self.bus = bus
        self.scratch = scratch
        self._keys = keys
        self._owns_database = owns_database

    def __repr__(self) -> str:
        return f"ArtifactStore({self.database.url}, {self.blobs.url}, tenant={self.tenant!r})"

    def with_tenant(self, tenant: str) -> ArtifactStore:
        """The same database and blobs for another tenant (closing it closes nothing)."""
        return ArtifactStore(
            self.database,
            self.blobs,
            tenant=tenant,
            keys=self._keys,
            bus=self.bus,
            scratch=self.scratch,
        )

    @property
    def keyring(self) -> Keyring:
        """The master keys, loaded on first use."""
        if self._keys is None:
            self._keys = Keyring()
        if not isinstance(self._keys, Keyring):
            self._keys = self._keys()
        return self._keys

    @property
    def context(self) -> str:
        """The associated data of this tenant's encrypted blobs."""
        return value_context(CONTENT_CONTEXT, self.tenant)

    def close(self) -> None:
        if self._owns_database:
            self.database.dispose()

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- putting -------------------------------------------------------------------------------

    def put(
        self,
        source: Path | str | bytes,
        *,
        name: str | None = None,
        kind: str | None = None,
        media_type: str | None = None,
        producer: Producer | None = None,
        labels: Mapping[str, str] | None = None,
        expires: dt.datetime | dt.timedelta | None = None,
        sensitive: bool = False,
    ) -> ArtifactRecord:
        """Store a file, a directory (path) or bytes and return its record.

        ``name`` defaults to the path's name (bytes need one); ``kind`` to ``file``
        (``directory`` for a directory, whatever is asked); ``media_type`` is guessed from the
        name. ``expires`` is a moment or a duration from now. ``sensitive`` encrypts the blob
        under the current master key."""
        producer = producer or Producer()
        labels = check_labels(labels)
        if isinstance(source, bytes | bytearray | memoryview):
            if not name:
                raise MemoryStoreError("an artifact put from bytes needs a name")
            data = bytes(source)
            fields = self._fields(name, kind or "file", media_type, producer, labels, expires)
            return self._put(fields, lambda: self._store_bytes(data, sensitive), "")
        path = Path(source)
        try:
            mode = os.stat(path).st_mode
        except OSError as error:
            raise MemoryStoreError(f"cannot store {path}: {error.strerror}") from error
        name = name or path.absolute().name
        if stat.S_ISDIR(mode):
            media_type = media_type or TAR_MEDIA_TYPE
            fields = self._fields(name, DIRECTORY, media_type, producer, labels, expires)
            with self._staged_tree(path) as archive:
                return self._put(fields, lambda: self._store_file(archive, sensitive), str(path))
        if not stat.S_ISREG(mode):
            raise MemoryStoreError(f"cannot store {path}: neither a regular file nor a directory")
        fields = self._fields(name, kind or "file", media_type, producer, labels, expires)
        return self._put(fields, lambda: self._store_file(path, sensitive), str(path))

    def _fields(
        self,
        name: str,
        kind: str,
        media_type: str | None,
        producer: Producer,
        labels: dict[str, str],
        expires: dt.datetime | dt.timedelta | None = None,
    ) -> dict[str, Any]:
        if not name or "\x00" in name:
            raise MemoryStoreError(f"artifact name {name!r} is empty or holds a NUL")
        expiry(expires, utc_now())  # checked before anything is stored
        return {
            "name": name,
            "kind": check_kind(kind),
            "media_type": media_type or guess_media_type(name),
            "plan": producer.plan,
            "run_id": producer.run_id,
            "task_id": producer.task_id,
            "graph_hash": producer.graph_hash,
            "labels": labels,
            "expires": expires,
        }

    @contextlib.contextmanager
    def _staged_tree(self, root: Path) -> Iterator[Path]:
        """The deterministic tar of ``root`` in a scratch file, removed at the end."""
        if self.scratch is not None:
            self.scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryDirectory(prefix="p2f-tree-", dir=self.scratch) as directory:
            archive = Path(directory) / "tree.tar"
            with open(archive, "wb") as sink:
                write_tree(root, sink)
            yield archive

    def _store_bytes(self, data: bytes, sensitive: bool) -> _Stored:
        if sensitive:
            return self._store_encrypted(io.BytesIO(data))
        put = self.blobs.put_bytes(self.tenant, data)
        return _Stored(put, put.digest, put.size, None)

    def _store_file(self, path: Path, sensitive: bool) -> _Stored:
        if sensitive:
            with open(path, "rb") as plaintext:
                return self._store_encrypted(plaintext)
        put = self.blobs.put_file(self.tenant, path)
        return _Stored(put, put.digest, put.size, None)

    def _store_encrypted(self, plaintext: BinaryIO) -> _Stored:
        reader = EncryptingReader(self.keyring, plaintext, context=self.context)
        put = self.blobs.put_stream(self.tenant, reader)
        return _Stored(put, reader.plaintext_digest(), reader.plaintext_size, reader.wrapped_key)

    def _put(
        self, fields: dict[str, Any], store: Callable[[], _Stored], path: str
    ) -> ArtifactRecord:
        stored = store()  # the blob first: a row never exists without its blob
        now = utc_now()
        record = ArtifactRecord(
            tenant=self.tenant,
            size=stored.size,
            digest=stored.put.digest,
            content_digest=stored.content_digest,
            sensitive=stored.key is not None,
            key_id=stored.key.key_id if stored.key else None,
            wrapped_key=stored.key.wrapped if stored.key else None,
            created=now,
            **{**fields, "expires": expiry(fields["expires"], now)},
        )
        with self.database.session(self.tenant) as session:
            session.add(record)
            session.flush()
            audit.append(
                session,
                self.tenant,
                audit.actor(),
                "artifact.stored",
                f"{record.plan}/{record.name}",
                _audit_detail(record),
                key=f"event:{record.id}",  # the id of its event: a bus feed records it once
            )
        if stored.key is None and not stored.put.created:
            self._ensure_blob(record, store)
        self._publish(record, path)
        return record

    def _ensure_blob(self, record: ArtifactRecord, store: Callable[[], _Stored]) -> None:
        """A put of content already stored only touched the blob; on a store that cannot rename
        (S3), a collector may have deleted it in the instant after that touch. Put it again."""
        if self.blobs.exists(self.tenant, record.digest):
            return
        again = store()
        if again.put.digest != record.digest:
            raise BlobStoreUnavailable(
                f"artifact {record.id}: its blob was collected and the source changed since "
                "the put; put it again"
            )

    def _publish(self, record: ArtifactRecord, path: str) -> None:
        if self.bus is None:
            return
        event = new_event(
            "plan2flow.artifact.stored",
            tenant=self.tenant,
            plan=record.plan,
            graphhash=f"sha256:{record.graph_hash}" if record.graph_hash else None,
            flowrunid=str(record.run_id) if record.run_id else None,
            taskid=record.task_id or None,
            data={
                "name": record.name,
                "path": path,
                "digest": record.content_digest,
                "size": record.size,
            },
            id=str(record.id),
        )
        self.bus.publish(event)

    # -- reading -------------------------------------------------------------------------------

    def show(self, ref: ArtifactRef) -> ArtifactRecord:
        """The record of an artifact by id or digest (the newest with that stored digest, else
        with that content digest); ArtifactNotFound when this tenant has none."""
        if isinstance(ref, ArtifactRecord):
            ref = ref.id
        with self.database.session(self.tenant) as session:
            found = _find(session, self.tenant, ref)
        if found is None:
            raise ArtifactNotFound(f"no artifact {ref} in tenant {self.tenant!r}")
        return found

    def search(self, query: ArtifactQuery | None = None, /, **filters: Any) -> ArtifactPage:
        """One page of artifacts, newest first: ``query``, or an ArtifactQuery of ``filters``
        (``plan``, ``run_id``, ``task_id``, ``kind``, ``labels``, ``name_prefix``, ``since``,
        ``limit``, ``after``)."""
        query = query if query is not None else ArtifactQuery(**filters)
        with self.database.session(self.tenant) as session:
            rows = session.exec(page_statement(query, self.tenant)).all()
        return make_page(rows, query.limit)

    def materialize(self, ref: ArtifactRef, destination: Path | str) -> ArtifactRecord:
        """Write an artifact to ``destination`` (its parent made if need be), verified, complete
        or not at all: a file replaces a file there; a directory artifact is unpacked safely
        into a new or empty directory. Returns its record."""
        record = self.show(ref)
        target = Path(destination).absolute()
        staging = target.with_name(f".{target.name}.{os.urandom(6).hex()}.part")
        archive = staging.with_name(staging.name + ".tar")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if record.kind != DIRECTORY:
                if target.is_dir():
                    raise MemoryStoreError(f"{target} is a directory: give the file's path")
                self._write_plain(record, staging)
                os.replace(staging, target)
                return record
            self._write_plain(record, archive)
            extract_tree(archive, staging)
            replace_directory(staging, target)
            return record
        except OSError as error:
            reason = error.strerror or str(error)
            raise MemoryStoreError(f"cannot write {target}: {reason}") from error
        finally:
            _discard(staging)
            _discard(archive)

    def _write_plain(self, record: ArtifactRecord, target: Path) -> None:
        """The plaintext of ``record`` at ``target``, verified against the row's digests."""
        if record.wrapped_key is None:
            self.blobs.copy_to(self.tenant, record.digest, target)  # verifies the digest
            return
        with self.blobs.open(self.tenant, record.digest) as blob:
            decrypt_to_file(self.keyring, _wrapped(record), blob, target, context=self.context)
        with open(target, "rb") as written:
            found = hashlib.file_digest(written, "sha256").hexdigest()
        if found != record.content_digest:
            target.unlink(missing_ok=True)
            raise BlobCorrupted(
                f"artifact {record.id}: its plaintext does not hash to {record.content_digest}"
            )

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        """An artifact's plaintext in memory, verified (a directory: its tar)."""
        record = self.show(ref)
        if record.wrapped_key is None:
            return self.blobs.get_bytes(self.tenant, record.digest)
        plaintext = io.BytesIO()
        with self.blobs.open(self.tenant, record.digest) as blob:
            decrypt_stream(
                self.keyring, _wrapped(record), blob, plaintext.write, context=self.context
            )
        data = plaintext.getvalue()
        if hashlib.sha256(data).hexdigest() != record.content_digest:
            raise BlobCorrupted(
                f"artifact {record.id}: its plaintext does not hash to {record.content_digest}"
            )
        return data

    # -- deleting ------------------------------------------------------------------------------

    def delete(self, ref: ArtifactRef, *, grace: dt.timedelta = DEFAULT_GRACE) -> ArtifactRecord:
        """Delete an artifact's row (with its ``artifact.deleted`` entry) and then its blob, when
        no other row references it and nobody touched it for ``grace``; the record."""
        record = self.show(ref)
        deleted = self.delete_rows([record.id], reason="deleted")
        if not deleted:
            raise ArtifactNotFound(f"no artifact {record.id} in tenant {self.tenant!r}")
        self.collect_blobs({record.digest}, grace=grace)
        return deleted[0]

    def delete_rows(self, ids: list[uuid.UUID], *, reason: str) -> list[ArtifactRecord]:
        """Delete these rows, in batches of one transaction each with their audit entries;
        the records deleted (rows deleted meanwhile by someone else are skipped)."""
        deleted: list[ArtifactRecord] = []
        for start in range(0, len(ids), DELETE_BATCH):
            batch = ids[start : start + DELETE_BATCH]
            with self.database.session(self.tenant) as session:
                rows = session.exec(
                    select(ArtifactRecord)
                    .where(col(ArtifactRecord.tenant) == self.tenant)
                    .where(col(ArtifactRecord.id).in_(batch))
                    .order_by(col(ArtifactRecord.created), col(ArtifactRecord.id))
                    .with_for_update()
                ).all()
                who = audit.actor()
                for row in rows:
                    session.delete(row)
                    detail = {**_audit_detail(row), "reason": reason}
                    subject = f"{row.plan}/{row.name}"
                    audit.append(session, self.tenant, who, "artifact.deleted", subject, detail)
                deleted.extend(rows)
        return deleted

    def referenced(self, digests: set[str] | None = None) -> set[str]:
        """The blob digests that rows of this tenant reference (among ``digests``, if given)."""
        statement = select(ArtifactRecord.digest).where(ArtifactRecord.tenant == self.tenant)
        if digests is not None:
            statement = statement.where(col(ArtifactRecord.digest).in_(sorted(digests)))
        with self.database.session(self.tenant) as session:
            return set(session.exec(statement.distinct()).all())

    def collect_blobs(self, digests: set[str], *, grace: dt.timedelta) -> list[str]:
        """Delete those of ``digests`` that no row references and nobody touched for ``grace``
        (the cutoff taken before the references are read); the digests deleted."""
        cutoff = age_cutoff(grace.total_seconds())
        unreferenced = digests - self.referenced(digests)
        return sorted(
            digest
            for digest in unreferenced
            if self.blobs.delete(self.tenant, digest, untouched_since=cutoff)
        )

    def gc(
        self,
        *,
        older_than: dt.timedelta | None = None,
        keep_last: int | None = None,
        grace: dt.timedelta = DEFAULT_GRACE,
        dry_run: bool = False,
        now: dt.datetime | None = None,
    ) -> GcReport:
        """Retention, then garbage collection; see :func:`plan2flow.memory.artifact_gc.collect`."""
        return collect(
            self,
            older_than=older_than,
            keep_last=keep_last,
            grace=grace,
            dry_run=dry_run,
            now=now,
        )


def _discard(path: Path) -> None:
    """Remove a staging file or directory left by a failed write (nothing if it is gone)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _wrapped(record: ArtifactRecord) -> WrappedKey:
    if record.key_id is None or record.wrapped_key is None:
        raise MemoryStoreError(f"artifact {record.id} is not encrypted")
    return WrappedKey(record.key_id, bytes(record.wrapped_key))


def _audit_detail(record: ArtifactRecord) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "artifact": str(record.id),
        "kind": record.kind,
        "digest": record.digest,
        "content_digest": record.content_digest,
        "size": record.size,
        "sensitive": record.sensitive,
    }
    if record.run_id is not None:
        detail["run"] = str(record.run_id)
    if record.task_id:
        detail["task"] = record.task_id
    return detail


def _find(session: Session, tenant: str, ref: uuid.UUID | str) -> ArtifactRecord | None:
    base = select(ArtifactRecord).where(col(ArtifactRecord.tenant) == tenant)
    newest = (col(ArtifactRecord.created).desc(), col(ArtifactRecord.id).desc())
    if isinstance(ref, str) and _HEX64.fullmatch(ref.removeprefix("sha256:")):
        digest = ref.removeprefix("sha256:")
        for column in (ArtifactRecord.digest, ArtifactRecord.content_digest):
            found = session.exec(base.where(col(column) == digest).order_by(*newest).limit(1))
            if (record := found.first()) is not None:
                return record
        return None
    try:
        ident = ref if isinstance(ref, uuid.UUID) else uuid.UUID(ref)
    except ValueError:
        raise ArtifactNotFound(
            f"{ref!r} is neither an artifact id (a UUID) nor a sha256 digest"
        ) from None
    return session.exec(base.where(col(ArtifactRecord.id) == ident)).first()


def _keys_environ(settings: MemorySettings) -> dict[str, str]:
    environ = {}
    if settings.keys_file is not None:
        environ[KEYS_FILE_ENV] = str(settings.keys_file)
    if settings.master_key is not None:
        environ[MASTER_KEY_ENV] = settings.master_key
    return environ


def settings_keyring(settings: MemorySettings) -> Keyring:
    """The master keys that ``settings`` name (a keys file or one key; empty when neither)."""
    return load_keyring(_keys_environ(settings))


def open_artifact_store(
    settings: MemorySettings | None = None,
    *,
    tenant: str | None = None,
    bus: EventBus | None = None,
) -> ArtifactStore:
    """The artifact store of ``settings`` (default: the environment) for ``tenant`` (default:
    the settings' tenant); close it (or use it as a context manager) to close its database."""
    settings = settings or memory_settings()
    database = configured_database(settings)
    try:
        blobs = blob_store(settings.artifacts_url)
        return ArtifactStore(
            database,
            blobs,
            tenant=tenant or settings.tenant,
            keys=lambda: settings_keyring(settings),
            bus=bus,
            scratch=settings.home / "tmp",
            owns_database=True,
        )
    except BaseException:
        database.dispose()
        raise


__all__ = [
    "DEFAULT_GRACE",
    "ArtifactPage",
    "ArtifactQuery",
    "ArtifactRef",
    "ArtifactStore",
    "Producer",
    "open_artifact_store",
    "settings_keyring",
]
