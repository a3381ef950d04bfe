"""Encryption at rest: AES-256-GCM envelopes, done by the application (never in SQL, where a
key would show in ``pg_stat_activity`` and logs).

Every value gets a random 256-bit *data key*; the data key is encrypted ("wrapped") by the
current master key of the :class:`~plan2flow.memory.keyring.Keyring`, with the master key's id as
associated data. The value is encrypted by the data key with its *context* as associated data,
``<table>.<column>:<tenant>`` (:func:`value_context`): a ciphertext copied into another tenant's
row, or another column, fails to decrypt with DecryptionFailed. Rotating a master key re-wraps
the 32-byte data keys (:func:`rewrap`); the payloads are never touched.

Two forms:

* a **column value** is self-contained, versioned bytes (:func:`encrypt_value`)::

      0x01 | key id length (1) | key id | wrap nonce (12) | wrapped data key (48)
           | nonce (12) | ciphertext | tag (16)

  90 bytes plus the key id more than the plaintext.
* a **blob** is split (:mod:`plan2flow.memory.crypto_stream`): its :class:`WrappedKey` (key id,
  and ``0x01 | wrap nonce | wrapped data key``) goes in the artifact row (``key_id``,
  ``wrapped_key``); the blob holds ``nonce | ciphertext | tag``, streamed in chunks.

Errors: a key id that is not configured raises KeyUnavailable naming it; anything that fails
authentication (tampered, truncated, another context) raises DecryptionFailed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import overload

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionFailed, KeysFileError
from .keyring import KEY_SIZE, Keyring, check_key_id, generate_key, load_keyring
from .settings import check_tenant

VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
WRAPPED_SIZE = KEY_SIZE + TAG_SIZE
"""A wrapped data key: the 32-byte key and its tag."""
WRAP_SIZE = NONCE_SIZE + WRAPPED_SIZE
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


def value_context(column: str, tenant: str) -> str:
    """The associated data that binds a value to its column and tenant.

    >>> value_context("runs.parameters", "acme")
    'runs.parameters:acme'
    """
    if not _COLUMN.fullmatch(column):
        raise ValueError(f"column {column!r} is not <table>.<column>")
    return f"{column}:{check_tenant(tenant)}"


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped by master key ``key_id``; ``wrapped`` is what the artifact row's
    ``wrapped_key`` stores: ``0x01 | wrap nonce | wrapped data key`` (61 bytes)."""

    key_id: str
    wrapped: bytes


def _wrap_aad(kid: str) -> bytes:
    return b"plan2flow:data-key:v1:" + kid.encode("ascii")


def data_aad(context: str) -> bytes:
    """The associated data of a payload: the format's version and the context."""
    return b"plan2flow:v1:" + context.encode("utf-8")


def wrap_data_key(keyring: Keyring, data_key: bytes, kid: str | None = None) -> WrappedKey:
    """``data_key`` wrapped by master key ``kid`` (default: the current one)."""
    kid = keyring.current if kid is None else kid
    nonce = os.urandom(NONCE_SIZE)
    wrapped = keyring.cipher(kid).encrypt(nonce, data_key, _wrap_aad(kid))
    return WrappedKey(kid, bytes([VERSION]) + nonce + wrapped)


def unwrap_data_key(keyring: Keyring, key: WrappedKey) -> bytes:
    """The data key, or KeyUnavailable (its master key is not configured) or DecryptionFailed
    (the wrapped key was altered, or belongs to another key id)."""
    cipher = keyring.cipher(key.key_id)
    if len(key.wrapped) != 1 + WRAP_SIZE or key.wrapped[0] != VERSION:
        raise DecryptionFailed(
            f"a data key wrapped by {key.key_id!r} is not a version {VERSION} wrapped key"
        )
    nonce, wrapped = key.wrapped[1 : 1 + NONCE_SIZE], key.wrapped[1 + NONCE_SIZE :]
    try:
        return cipher.decrypt(nonce, wrapped, _wrap_aad(key.key_id))
    except InvalidTag:
        raise DecryptionFailed(
            f"a data key does not unwrap with master key {key.key_id!r}: altered, or wrapped "
            "by another key"
        ) from None


def new_data_key(keyring: Keyring) -> tuple[bytes, WrappedKey]:
    """A fresh random data key, and the same wrapped by the current master key."""
    data_key = AESGCM.generate_key(bit_length=8 * KEY_SIZE)
    return data_key, wrap_data_key(keyring, data_key)


def encrypt_value(keyring: Keyring, plaintext: bytes, *, context: str) -> bytes:
    """``plaintext`` as a self-contained column value bound to ``context``."""
    data_key, key = new_data_key(keyring)
    nonce = os.urandom(NONCE_SIZE)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, data_aad(context))
    return _header(key) + nonce + ciphertext


def decrypt_value(keyring: Keyring, value: bytes, *, context: str) -> bytes:
    """The plaintext of a column value encrypted for ``context``."""
    key, payload = _split_value(value)
    data_key = unwrap_data_key(keyring, key)
    nonce, ciphertext = payload[:NONCE_SIZE], payload[NONCE_SIZE:]
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, data_aad(context))
    except InvalidTag:
        raise DecryptionFailed(
            f"a value for {context!r} fails authentication: altered, or encrypted for another "
            "tenant or column"
        ) from None


def value_key_id(value: bytes) -> str:
    """The id of the master key that wrapped a column value's data key."""
    return _split_value(value)[0].key_id


def _header(key: WrappedKey) -> bytes:
    kid = key.key_id.encode("ascii")
    return bytes([VERSION, len(kid)]) + kid + key.wrapped[1:]


def _split_value(value: bytes) -> tuple[WrappedKey, bytes]:
    """A column value's wrapped key and its payload (nonce | ciphertext | tag)."""
    if len(value) < 2 or value[0] != VERSION:
        raise DecryptionFailed(f"not a version {VERSION} encrypted value")
    end = 2 + value[1]
    try:
        kid = check_key_id(bytes(value[2:end]).decode("ascii"))
    except (UnicodeDecodeError, KeysFileError):
        raise DecryptionFailed("an encrypted value with a malformed key id") from None
    if len(value) < end + WRAP_SIZE + NONCE_SIZE + TAG_SIZE:
        raise DecryptionFailed(f"an encrypted value under {kid!r} is truncated")
    wrapped = bytes([VERSION]) + bytes(value[end : end + WRAP_SIZE])
    return WrappedKey(kid, wrapped), bytes(value[end + WRAP_SIZE :])


@overload
def rewrap(keyring: Keyring, value: bytes, *, key_id: str | None = None) -> bytes: ...


@overload
def rewrap(keyring: Keyring, value: WrappedKey, *, key_id: str | None = None) -> WrappedKey: ...


def rewrap(
    keyring: Keyring, value: bytes | WrappedKey, *, key_id: str | None = None
) -> bytes | WrappedKey:
    """The same value with its data key wrapped by master key ``key_id`` (default: the current
    one): a column value (its payload bytes unchanged) or a blob's WrappedKey (its blob
    untouched). A value already under ``key_id`` is returned as it is."""
    target = keyring.current if key_id is None else key_id
    keyring.cipher(target)  # KeyUnavailable before any work
    if isinstance(value, WrappedKey):
        if value.key_id == target:
            return value
        return wrap_data_key(keyring, unwrap_data_key(keyring, value), target)
    key, payload = _split_value(value)
    if key.key_id == target:
        return value
    rewrapped = wrap_data_key(keyring, unwrap_data_key(keyring, key), target)
    return _header(rewrapped) + payload


__all__ = [
    "KEY_SIZE",
    "Keyring",
    "WrappedKey",
    "decrypt_value",
    "encrypt_value",
    "generate_key",
    "load_keyring",
    "new_data_key",
    "rewrap",
    "unwrap_data_key",
    "value_context",
    "value_key_id",
    "wrap_data_key",
]
