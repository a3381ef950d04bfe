"""Encrypted blobs as streams: the split form of :mod:`plan2flow.memory.crypto`.

A blob holds ``nonce (12) | ciphertext | tag (16)``, AES-256-GCM under a data key of its own
whose :class:`~plan2flow.memory.crypto.WrappedKey` goes in the artifact row. Both directions run
in chunks of :data:`~plan2flow.memory.blobs.CHUNK_SIZE`, whatever the size (GCM allows up to
64 GiB per data key). :class:`EncryptingReader` turns a plaintext stream into the blob's bytes
for :meth:`BlobStore.put_stream`; :func:`decrypt_to_file` writes plaintext to a temporary
beside its destination and renames it only once the tag has verified, so unauthenticated
plaintext never becomes a file of that name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .blobs import CHUNK_SIZE, copy_chunks, write_all
from .crypto import NONCE_SIZE, TAG_SIZE, WrappedKey, data_aad, new_data_key, unwrap_data_key
from .errors import DecryptionFailed
from .keyring import Keyring

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class EncryptingReader(io.RawIOBase):
    """Reads as the encrypted blob of the plaintext ``source``: the nonce, the ciphertext chunk
    by chunk, then the tag. ``wrapped_key`` is known from the start; ``plaintext_size`` and
    :meth:`plaintext_digest` (the row's ``content_digest``) once the end is read."""

    def __init__(self, keyring: Keyring, source: BinaryIO, *, context: str) -> None:
        super().__init__()
        data_key, self.wrapped_key = new_data_key(keyring)
        nonce = os.urandom(NONCE_SIZE)
        self._encryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce)).encryptor()
        self._encryptor.authenticate_additional_data(data_aad(context))
        self._source = source
        self._pending = memoryview(nonce)
        self._finished = False
        self._plaintext = hashlib.sha256()
        self.plaintext_size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        out = memoryview(buffer).cast("B")
        while not self._pending:
            if self._finished:
                return 0
            self._encrypt_more()
        count = min(len(out), len(self._pending))
        out[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _encrypt_more(self) -> None:
        chunk = self._source.read(CHUNK_SIZE)
        if chunk:
            self._plaintext.update(chunk)
            self.plaintext_size += len(chunk)
            self._pending = memoryview(self._encryptor.update(chunk))
        else:
            self._pending = memoryview(self._encryptor.finalize() + self._encryptor.tag)
            self._finished = True

    def plaintext_digest(self) -> str:
        """The sha256 of the plaintext, once it has all been read."""
        if not self._finished:
            raise RuntimeError("the plaintext digest is known once the stream is read to its end")
        return self._plaintext.hexdigest()


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = source.read(size - len(data))
        if not more:
            break
        data += more
    return data


def decrypt_stream(
    keyring: Keyring,
    key: WrappedKey,
    source: BinaryIO,
    write: Callable[[bytes], object],
    *,
    context: str,
) -> int:
    """Decrypt the blob read from ``source`` into ``write`` chunk by chunk; the plaintext size.

    The tag is checked at the end: DecryptionFailed then means that ``write`` has received
    unauthenticated plaintext, which the caller must discard (:func:`decrypt_to_file` does).
    """
    data_key = unwrap_data_key(keyring, key)
    nonce = _read_exactly(source, NONCE_SIZE)
    if len(nonce) < NONCE_SIZE:
        raise DecryptionFailed(f"an encrypted blob for {context!r} is truncated")
    decryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce)).decryptor()
    decryptor.authenticate_additional_data(data_aad(context))
    tail, size = b"", 0  # the last TAG_SIZE bytes seen may be the tag: held back
    while chunk := source.read(CHUNK_SIZE):
        if len(chunk) >= TAG_SIZE:
            released = decryptor.update(tail) + decryptor.update(memoryview(chunk)[:-TAG_SIZE])
            tail = chunk[-TAG_SIZE:]
        else:
            joined = tail + chunk
            released = decryptor.update(joined[:-TAG_SIZE])
            tail = joined[-TAG_SIZE:]
        write(released)
        size += len(released)
    if len(tail) < TAG_SIZE:
        raise DecryptionFailed(f"an encrypted blob for {context!r} is truncated")
    try:
        last = decryptor.finalize_with_tag(tail)
    except InvalidTag:
        raise DecryptionFailed(
            f"an encrypted blob for {context!r} fails authentication: altered, truncated, or "
            "encrypted for another tenant"
        ) from None
    write(last)
    return size + len(last)


def decrypt_to_file(
    keyring: Keyring, key: WrappedKey, source: BinaryIO, destination: Path, *, context: str
) -> int:
    """Decrypt a blob into ``destination`` (mode 0600), renamed into place only once it has
    authenticated; nothing is left behind when it does not. The plaintext size."""
    temporary = destination.with_name(f".{destination.name}.{os.urandom(6).hex()}.part")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            write = write_all(fd)
            size = decrypt_stream(
                keyring, key, source, lambda data: write(memoryview(data)), context=context
            )
        finally:
            os.close(fd)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return size


def encrypt_file(keyring: Keyring, source: Path, destination: Path, *, context: str) -> WrappedKey:
    """Encrypt the file ``source`` into ``destination`` as a blob; its wrapped data key."""
    temporary = destination.with_name(f".{destination.name}.{os.urandom(6).hex()}.part")
    with open(source, "rb") as plaintext:
        reader = EncryptingReader(keyring, plaintext, context=context)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                copy_chunks(reader, write_all(fd))
            finally:
                os.close(fd)
            os.replace(temporary, destination)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
    return reader.wrapped_key


def decrypt_file(
    keyring: Keyring, key: WrappedKey, source: Path, destination: Path, *, context: str
) -> int:
    """Decrypt the blob file ``source`` into ``destination``; see :func:`decrypt_to_file`."""
    with open(source, "rb") as blob:
        return decrypt_to_file(keyring, key, blob, destination, context=context)
