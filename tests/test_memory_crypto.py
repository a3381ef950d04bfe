"""Encryption at rest: master keys from a private file or the environment, AES-256-GCM envelopes
bound to their tenant and column, rotation that never touches a payload, and blobs encrypted
and decrypted as streams, on real files."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from plan2flow.memory.blobs import CHUNK_SIZE
from plan2flow.memory.blobs_local import LocalBlobStore
from plan2flow.memory.crypto import (
    Keyring,
    WrappedKey,
    decrypt_value,
    encrypt_value,
    generate_key,
    load_keyring,
    rewrap,
    value_context,
    value_key_id,
)
from plan2flow.memory.crypto_stream import (
    EncryptingReader,
    decrypt_file,
    decrypt_stream,
    decrypt_to_file,
    encrypt_file,
)
from plan2flow.memory.errors import DecryptionFailed, KeysFileError, KeyUnavailable

K1, K2 = os.urandom(32), os.urandom(32)
PARAMETERS = value_context("runs.parameters", "acme")
CANARY = b"api_token=canary-7f3a9c"


def keys_line(kid: str, secret: bytes) -> str:
    return f"{kid}={base64.b64encode(secret).decode()}\n"


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# -- column values ---------------------------------------------------------------------------


def test_a_value_round_trips_in_its_documented_format() -> None:
    keyring = Keyring([("k1", K1)])
    value = encrypt_value(keyring, b"{}", context=PARAMETERS)
    assert value[0] == 1 and value[1] == 2 and value[2:4] == b"k1"
    assert len(value) == 90 + len("k1") + len(b"{}")
    assert value_key_id(value) == "k1"
    assert decrypt_value(keyring, value, context=PARAMETERS) == b"{}"
    assert encrypt_value(keyring, b"{}", context=PARAMETERS) != value  # fresh key and nonce


def test_ciphertext_holds_no_plaintext() -> None:
    keyring = Keyring([("k1", K1)])
    value = encrypt_value(keyring, CANARY * 20, context=PARAMETERS)
    assert CANARY not in value and CANARY[:8] not in value
    assert K1 not in value


def test_a_value_moved_to_another_tenant_or_column_does_not_decrypt() -> None:
    keyring = Keyring([("k1", K1)])
    value = encrypt_value(keyring, CANARY, context=PARAMETERS)
    with pytest.raises(DecryptionFailed, match="another tenant or column"):
        decrypt_value(keyring, value, context=value_context("runs.parameters", "globex"))
    with pytest.raises(DecryptionFailed):
        decrypt_value(keyring, value, context=value_context("runs.secrets", "acme"))


def test_any_altered_or_truncated_byte_is_refused() -> None:
    keyring = Keyring([("k1", K1)])
    value = encrypt_value(keyring, CANARY, context=PARAMETERS)
    for index in range(len(value)):
        altered = bytearray(value)
        altered[index] ^= 0x01
        # A changed key id may name a key that is not configured; anything else fails to
        # authenticate. Never a plaintext.
        with pytest.raises((DecryptionFailed, KeyUnavailable)):
            decrypt_value(keyring, bytes(altered), context=PARAMETERS)
    for length in range(len(value)):
        with pytest.raises(DecryptionFailed):
            decrypt_value(keyring, value[:length], context=PARAMETERS)


def test_an_unknown_key_id_is_named_and_no_key_is_shown() -> None:
    value = encrypt_value(Keyring([("2026-q3", K1)]), CANARY, context=PARAMETERS)
    keyring = Keyring([("2026-q4", K2)])
    with pytest.raises(KeyUnavailable, match="'2026-q3'") as caught:
        decrypt_value(keyring, value, context=PARAMETERS)
    message = str(caught.value)
    for secret in (K1, K2):
        assert base64.b64encode(secret).decode() not in message and secret.hex() not in message
    assert "2026-q4" in message  # what is configured instead
    assert repr(keyring) == "Keyring(key_ids=['2026-q4'])"
    with pytest.raises(KeyUnavailable, match="PLAN2FLOW_KEYS_FILE"):
        encrypt_value(Keyring(), CANARY, context=PARAMETERS)


def test_rewrap_moves_the_data_key_and_keeps_the_payload_bytes() -> None:
    old, both, new = Keyring([("k1", K1)]), Keyring([("k1", K1), ("k2", K2)]), Keyring([("k2", K2)])
    value = encrypt_value(old, CANARY, context=PARAMETERS)
    rewrapped = rewrap(both, value)
    payload = len(CANARY) + 12 + 16  # nonce | ciphertext | tag
    assert value_key_id(rewrapped) == "k2"
    assert rewrapped[-payload:] == value[-payload:]
    assert rewrapped[: -payload - 60] != value[: -payload - 60]  # the header names k2
    assert decrypt_value(new, rewrapped, context=PARAMETERS) == CANARY
    with pytest.raises(KeyUnavailable, match="'k2'"):
        decrypt_value(old, rewrapped, context=PARAMETERS)
    with pytest.raises(KeyUnavailable, match="'k1'"):
        decrypt_value(new, value, context=PARAMETERS)
    assert rewrap(both, rewrapped) is rewrapped  # already under the current key
    with pytest.raises(KeyUnavailable, match="'k3'"):
        rewrap(both, value, key_id="k3")


def test_a_wrapped_key_is_bound_to_its_key_id() -> None:
    keyring = Keyring([("k1", K1), ("k2", K2)])
    value = encrypt_value(keyring, CANARY, context=PARAMETERS)
    relabelled = value[:2] + b"k1" + value[4:]  # k2's wrapped key presented as k1's
    with pytest.raises(DecryptionFailed, match="does not unwrap with master key 'k1'"):
        decrypt_value(keyring, relabelled, context=PARAMETERS)


# -- master keys -----------------------------------------------------------------------------


def test_the_keys_file_names_keys_and_the_last_is_current(tmp_path: Path) -> None:
    text = "# plan2flow master keys\n\n" + keys_line("k1", K1) + "  " + keys_line("k2", K2)
    path = private_file(tmp_path / "keys", text)
    keyring = load_keyring({"PLAN2FLOW_KEYS_FILE": str(path)})
    assert keyring.key_ids == ("k1", "k2") and keyring.current == "k2"
    value = encrypt_value(keyring, CANARY, context=PARAMETERS)
    assert value_key_id(value) == "k2"
    single = load_keyring({"PLAN2FLOW_MASTER_KEY": keys_line("k2", K2).strip()})
    assert decrypt_value(single, value, context=PARAMETERS) == CANARY
    assert load_keyring({}).key_ids == ()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620], ids=oct)
def test_a_keys_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = private_file(tmp_path / "keys", keys_line("k1", K1), mode)
    with pytest.raises(KeysFileError, match=f"mode {mode:04o}.*chmod 600"):
        load_keyring({"PLAN2FLOW_KEYS_FILE": str(path)})
    with pytest.raises(KeysFileError):
        generate_key(path, "k2")
    assert path.read_text() == keys_line("k1", K1)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("k1\n", "line 1: expected <key id>="),
        ("# ok\nk1=not base64!\n", "line 2: the key is not valid base64"),
        (keys_line("k1", K1[:16]), "line 1: the key has 16 bytes, not 32"),
        (keys_line("k 1", K1), "line 1: key id 'k 1'"),
        (keys_line("k1", K1) + keys_line("k1", K2), "'k1' is defined twice"),
    ],
    ids=["no-separator", "not-base64", "short-key", "bad-key-id", "duplicate"],
)
def test_a_malformed_keys_file_is_refused_by_line(tmp_path: Path, text: str, error: str) -> None:
    path = private_file(tmp_path / "keys", text)
    with pytest.raises(KeysFileError, match=error) as caught:
        load_keyring({"PLAN2FLOW_KEYS_FILE": str(path)})
    for secret in (K1, K2, K1[:16]):
        assert base64.b64encode(secret).decode() not in str(caught.value)


def test_one_source_of_keys_at_a_time(tmp_path: Path) -> None:
    path = private_file(tmp_path / "keys", keys_line("k1", K1))
    environ = {"PLAN2FLOW_KEYS_FILE": str(path), "PLAN2FLOW_MASTER_KEY": keys_line("k2", K2)}
    with pytest.raises(KeysFileError, match="ambiguous"):
        load_keyring(environ)
    with pytest.raises(KeysFileError, match="No such file"):
        load_keyring({"PLAN2FLOW_KEYS_FILE": str(tmp_path / "missing")})


def test_generate_key_appends_a_current_key_privately(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "keys"
    assert generate_key(path, "2026-11") == "2026-11"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = load_keyring({"PLAN2FLOW_KEYS_FILE": str(path)})
    value = encrypt_value(first, CANARY, context=PARAMETERS)
    before = path.read_text()
    generate_key(path, "2026-12")
    assert path.read_text().startswith(before)
    rotated = load_keyring({"PLAN2FLOW_KEYS_FILE": str(path)})
    assert rotated.key_ids == ("2026-11", "2026-12") and rotated.current == "2026-12"
    assert decrypt_value(rotated, rewrap(rotated, value), context=PARAMETERS) == CANARY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["keys"]  # no temporary left
    with pytest.raises(KeysFileError, match="already has a key '2026-12'"):
        generate_key(path, "2026-12")


# -- blobs -----------------------------------------------------------------------------------

BLOB = value_context("artifacts.content", "acme")


def large_plaintext() -> bytes:
    """More than three chunks, not a multiple of anything, with a canary in every chunk."""
    return (CANARY + os.urandom(100_000)) * 36 + b"end"


def test_a_file_larger_than_a_chunk_is_encrypted_as_a_stream(tmp_path: Path) -> None:
    keyring = Keyring([("k1", K1)])
    plaintext = large_plaintext()
    assert len(plaintext) > 3 * CHUNK_SIZE
    (tmp_path / "report.txt").write_bytes(plaintext)
    key = encrypt_file(keyring, tmp_path / "report.txt", tmp_path / "report.enc", context=BLOB)
    blob = (tmp_path / "report.enc").read_bytes()
    assert len(blob) == len(plaintext) + 12 + 16 and CANARY not in blob
    assert key.key_id == "k1" and len(key.wrapped) == 61
    size = decrypt_file(keyring, key, tmp_path / "report.enc", tmp_path / "out.txt", context=BLOB)
    assert size == len(plaintext) and (tmp_path / "out.txt").read_bytes() == plaintext
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o600


def test_an_altered_blob_never_becomes_a_plaintext_file(tmp_path: Path) -> None:
    keyring = Keyring([("k1", K1)])
    (tmp_path / "in").write_bytes(large_plaintext())
    key = encrypt_file(keyring, tmp_path / "in", tmp_path / "blob", context=BLOB)
    blob = (tmp_path / "blob").read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    altered = bytearray(blob)
    altered[len(blob) // 2] ^= 0x80
    cases = {
        "altered": bytes(altered),
        "truncated": blob[:-1],
        "short": blob[:20],
        "empty": b"",
        "extended": blob + b"\0",
    }
    for name, data in cases.items():
        with pytest.raises(DecryptionFailed):
            decrypt_to_file(keyring, key, Watched(data, out / name), out / name, context=BLOB)
    with pytest.raises(DecryptionFailed, match="another tenant"):
        decrypt_to_file(
            keyring,
            key,
            io.BytesIO(blob),
            out / "moved",
            context=value_context("artifacts.content", "globex"),
        )
    other = EncryptingReader(keyring, io.BytesIO(b"x"), context=BLOB).wrapped_key
    with pytest.raises(DecryptionFailed):  # another artifact's data key
        decrypt_to_file(keyring, other, io.BytesIO(blob), out / "swapped", context=BLOB)
    assert os.listdir(out) == []  # no file, no temporary
    (out / "kept").write_bytes(b"the previous version")
    with pytest.raises(DecryptionFailed):
        decrypt_to_file(keyring, key, io.BytesIO(bytes(altered)), out / "kept", context=BLOB)
    assert os.listdir(out) == ["kept"] and (out / "kept").read_bytes() == b"the previous version"


class Watched(io.BytesIO):
    """A blob whose every read checks that nothing has appeared under the destination's name."""

    def __init__(self, data: bytes, destination: Path) -> None:
        super().__init__(data)
        self.destination = destination

    def read(self, size: int | None = -1) -> bytes:
        assert not self.destination.exists(), "plaintext under its final name before the tag"
        return super().read(size)


def test_an_encrypted_blob_through_the_blob_store(tmp_path: Path) -> None:
    keyring = Keyring([("k1", K1)])
    store = LocalBlobStore(tmp_path / "blobs")
    plaintext = large_plaintext()
    reader = EncryptingReader(keyring, io.BytesIO(plaintext), context=BLOB)
    put = store.put_stream("acme", reader)
    assert reader.plaintext_digest() == hashlib.sha256(plaintext).hexdigest()
    assert reader.plaintext_size == len(plaintext) and put.size == len(plaintext) + 28
    on_disk = store.path("acme", put.digest).read_bytes()
    assert CANARY not in on_disk and hashlib.sha256(on_disk).hexdigest() == put.digest
    # The row would keep (key_id, wrapped_key); rotation re-wraps them, the blob stays.
    rotated = rewrap(Keyring([("k1", K1), ("k2", K2)]), reader.wrapped_key)
    assert isinstance(rotated, WrappedKey) and rotated.key_id == "k2"
    restored = io.BytesIO()
    with store.open("acme", put.digest) as blob:
        decrypt_stream(Keyring([("k2", K2)]), rotated, blob, restored.write, context=BLOB)
    assert restored.getvalue() == plaintext
    assert store.path("acme", put.digest).read_bytes() == on_disk
    with pytest.raises(KeyUnavailable, match="'k1'"), store.open("acme", put.digest) as blob:
        decrypt_stream(
            Keyring([("k2", K2)]), reader.wrapped_key, blob, restored.write, context=BLOB
        )
