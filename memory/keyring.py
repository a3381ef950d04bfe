"""Master keys: AES-256 keys named by key id, from a keys file or the environment.

``PLAN2FLOW_KEYS_FILE`` holds one key per line, ``<key id>=<base64 of 32 bytes>``, with ``#``
comments and blank lines; the *last* key is current (new values are wrapped with it), the others
stay to unwrap what they wrapped. The file must be private to its owner (mode 0600): one open to
group or others is refused, before a byte of it is read. ``PLAN2FLOW_MASTER_KEY`` holds a single
``<key id>=<base64>`` instead (for containers with injected secrets). Errors name key ids and
line numbers, never key material. :func:`generate_key` appends a fresh key, which is how a
rotation starts (then :func:`plan2flow.memory.crypto.rewrap` moves data keys onto it).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .blobs import fsync_directory
from .errors import KeysFileError, KeyUnavailable
from .settings import KEYS_FILE_ENV, MASTER_KEY_ENV

KEY_SIZE = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_key_id(kid: str) -> str:
    """``kid`` when it can name a key (letters, digits, ``.``, ``_``, ``-``; at most 64, the
    width of ``artifacts.key_id``), else KeysFileError.

    >>> check_key_id("2026-11")
    '2026-11'
    """
    if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
        raise KeysFileError(
            f"key id {kid!r} is not 1 to 64 letters, digits, '.', '_' or '-' (starting with a "
            "letter or digit)"
        )
    return kid


class Keyring:
    """Master keys by id; the last one is current. Holds cipher objects, never shows a key."""

    def __init__(self, keys: Iterable[tuple[str, bytes]] = ()) -> None:
        self._ciphers: dict[str, AESGCM] = {}
        for kid, secret in keys:
            check_key_id(kid)
            if kid in self._ciphers:
                raise KeysFileError(f"key id {kid!r} is defined twice")
            if len(secret) != KEY_SIZE:
                raise KeysFileError(f"key {kid!r} has {len(secret)} bytes, not {KEY_SIZE}")
            self._ciphers[kid] = AESGCM(secret)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, oldest first."""
        return tuple(self._ciphers)

    @property
    def current(self) -> str:
        """The key id new values are wrapped with: the last one."""
        if not self._ciphers:
            raise KeyUnavailable(
                f"no master key is configured: set {KEYS_FILE_ENV} (see generate_key) or "
                f"{MASTER_KEY_ENV}"
            )
        return next(reversed(self._ciphers))

    def cipher(self, kid: str) -> AESGCM:
        """The AES-256-GCM cipher of master key ``kid``, or KeyUnavailable naming it."""
        try:
            return self._ciphers[kid]
        except KeyError:
            configured = ", ".join(map(repr, self._ciphers)) or "none"
            raise KeyUnavailable(
                f"master key {kid!r} is not configured (configured: {configured}); add it to "
                f"{KEYS_FILE_ENV}"
            ) from None

    def __contains__(self, kid: object) -> bool:
        return kid in self._ciphers

    def __repr__(self) -> str:
        return f"Keyring(key_ids={list(self._ciphers)!r})"


def parse_keys(text: str, source: str) -> list[tuple[str, bytes]]:
    """The ``(key id, key)`` pairs of a keys file's text, in order; ``source`` names it in
    errors, which quote line numbers only."""
    keys = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kid, separator, encoded = line.partition("=")
        where = f"{source}, line {number}"
        if not separator:
            raise KeysFileError(f"{where}: expected <key id>=<base64 of {KEY_SIZE} bytes>")
        try:
            secret = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeysFileError(f"{where}: the key is not valid base64") from None
        if len(secret) != KEY_SIZE:
            raise KeysFileError(f"{where}: the key has {len(secret)} bytes, not {KEY_SIZE}")
        try:
            check_key_id(kid.strip())
        except KeysFileError as error:
            raise KeysFileError(f"{where}: {error}") from None
        keys.append((kid.strip(), secret))
    return keys


def read_keys_file(path: Path) -> list[tuple[str, bytes]]:
    """The keys of ``path``, refused if anyone but its owner may read or write it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise KeysFileError(f"keys file {path}: {error.strerror}") from error
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise KeysFileError(f"keys file {path} is not a regular file")
        if mode & 0o077:
            raise KeysFileError(
                f"keys file {path} is open to group or others (mode {stat.S_IMODE(mode):04o}): "
                f"make it private with `chmod 600 {path}`"
            )
        text = file.read().decode("utf-8", errors="replace")
    return parse_keys(text, f"keys file {path}")


def load_keyring(environ: Mapping[str, str] | None = None) -> Keyring:
    """The keyring configured in ``environ`` (default: the process environment): the keys file,
    or the single master key; empty when neither is set (encrypting then fails)."""
    env = os.environ if environ is None else environ
    keys_file, master_key = env.get(KEYS_FILE_ENV), env.get(MASTER_KEY_ENV)
    if keys_file and master_key:
        raise KeysFileError(
            f"both {KEYS_FILE_ENV} and {MASTER_KEY_ENV} are set: which key is current would be "
            "ambiguous; set one"
        )
    if keys_file:
        return Keyring(read_keys_file(Path(keys_file).expanduser()))
    if master_key:
        return Keyring(parse_keys(master_key, MASTER_KEY_ENV))
    return Keyring()


def generate_key(path: Path, kid: str) -> str:
    """Append a fresh random key named ``kid`` to the keys file at ``path`` (created if need
    be), which makes it current; the file is replaced atomically, mode 0600. Returns ``kid``.
    Rotations are not meant to run concurrently: the last writer wins."""
    check_key_id(kid)
    existing = b""
    if path.exists():
        if kid in dict(read_keys_file(path)):
            raise KeysFileError(f"keys file {path} already has a key {kid!r}")
        existing = path.read_bytes()
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = f"{kid}={base64.b64encode(os.urandom(KEY_SIZE)).decode('ascii')}\n".encode("ascii")
    temporary = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(existing + line)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return kid
