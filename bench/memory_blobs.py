"""Blob store and envelope benchmark: put/get throughput against a plain file copy of the same
bytes, and what encryption at rest costs per value.

Usage::

    python bench/memory_blobs.py [--sizes 1,64] [--rounds 7] [--values 20000] [--dir PATH]

Prints one JSON line. For each size (MiB of random bytes, one source file written before
anything is timed, so every measure reads it from the page cache), on the filesystem of
``--dir`` (default: the system's temporary directory), the median of ``--rounds`` rounds, the
measures of a round taken one after the other so that they share the machine's state:

* ``copyfile``: ``shutil.copyfile`` of the source to a new file (no fsync), the baseline;
* ``copyfile_fsync``: the same, then ``fsync`` of the copy; ``copyfile_atomic``: a plain copy
  with a put's guarantees (to a temporary, fsync, rename, fsync of the directory): the floor of
  a put without hashing;
* ``sha256``: ``hashlib.file_digest`` of the source: the hashing that content addressing and
  verification cannot skip, and which no copy has to do;
* ``one_thread_put``: what a put did in one thread before (each 1 MiB chunk read, hashed and
  written in turn, then fsync, rename, fsync of the directory); ``one_thread_get``: the same
  without the fsyncs, to a temporary renamed once verified: the reference of the two below;
* ``put``: ``LocalBlobStore.put_file`` of a blob the store does not hold (the kernel copies
  while a second thread hashes the copy, fsync, rename, fsync of the directory; one store for
  all rounds, its blobs deleted after each round, its 256 shard directories made beforehand, as
  in a store in use); ``put_stored``: the same bytes again (copied and hashed to a temporary,
  or hashed first up to 4 MiB, then only the touch time refreshed);
* ``get``: ``copy_to`` a new file (copy to a temporary while hashing it, rename once verified);
  ``get_bytes``: into memory, verified, against ``read_bytes`` of the source (``read_bytes``);
* ``put_encrypted``/``get_encrypted``: the same through AES-256-GCM (``EncryptingReader`` into
  ``put_stream``; ``open`` into ``decrypt_to_file``).

Each figure is ``{"ms": ..., "mib_per_s": ...}``; ``ratios`` divides put and get by the plain
copies. ``envelope`` is the column form on 64-byte values: microseconds per ``encrypt_value``
and ``decrypt_value`` (best of the rounds, ``--values`` values each) and the bytes added.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from plan2flow.memory.blobs import copy_chunks, fsync_directory, write_all
from plan2flow.memory.blobs_local import LocalBlobStore
from plan2flow.memory.crypto import Keyring, decrypt_value, encrypt_value, value_context
from plan2flow.memory.crypto_stream import EncryptingReader, decrypt_to_file

MiB = 1 << 20
TENANT = "bench"


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _copy_fsync(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_atomic(source: Path, target: Path) -> None:
    """A plain copy with a put's guarantees: a temporary, fsync, rename, fsync of the directory."""
    temporary = target.with_name(target.name + ".tmp")
    _copy_fsync(source, temporary)
    os.rename(temporary, target)
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _one_thread_put(source: Path, target: Path) -> str:
    """A put as done before the copy and the hash overlapped: one pass, one thread."""
    temporary = target.with_name(target.name + ".tmp")
    digest = hashlib.sha256()
    with open(source, "rb", buffering=0) as file:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            copy_chunks(file, digest.update, write_all(fd))
            os.fsync(fd)
        finally:
            os.close(fd)
    os.rename(temporary, target)
    fsync_directory(target.parent)
    return digest.hexdigest()


def _one_thread_get(source: Path, target: Path) -> str:
    """A verified get as done before: one pass, one thread, renamed once hashed."""
    temporary = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    with open(source, "rb", buffering=0) as file:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            copy_chunks(file, digest.update, write_all(fd))
        finally:
            os.close(fd)
    os.replace(temporary, target)
    return digest.hexdigest()


def one_round(
    source: Path, work: Path, store: LocalBlobStore, keyring: Keyring
) -> dict[str, float]:
    """Seconds of every measure once; ``store`` holds no blob before and after."""
    context = value_context("artifacts.content", TENANT)
    seconds = {
        "copyfile": _timed(lambda: shutil.copyfile(source, work / "copy")),
        "copyfile_fsync": _timed(lambda: _copy_fsync(source, work / "copy_fsync")),
        "copyfile_atomic": _timed(lambda: _copy_atomic(source, work / "copy_atomic")),
        "sha256": _timed(lambda: _sha256(source)),
        "read_bytes": _timed(source.read_bytes),
        "one_thread_put": _timed(lambda: _one_thread_put(source, work / "one_thread_put")),
        "one_thread_get": _timed(lambda: _one_thread_get(source, work / "one_thread_get")),
    }
    digest = ""

    def put() -> None:
        nonlocal digest
        digest = store.put_file(TENANT, source).digest

    seconds["put"] = _timed(put)
    seconds["put_stored"] = _timed(lambda: store.put_file(TENANT, source))
    seconds["get"] = _timed(lambda: store.copy_to(TENANT, digest, work / "got"))
    seconds["get_bytes"] = _timed(lambda: store.get_bytes(TENANT, digest))
    encrypted: dict[str, Any] = {}

    def put_encrypted() -> None:
        with open(source, "rb") as plaintext:
            reader = EncryptingReader(keyring, plaintext, context=context)
            encrypted["digest"] = store.put_stream(TENANT, reader).digest
            encrypted["key"] = reader.wrapped_key

    seconds["put_encrypted"] = _timed(put_encrypted)

    def get_encrypted() -> None:
        with store.open(TENANT, encrypted["digest"]) as blob:
            decrypt_to_file(keyring, encrypted["key"], blob, work / "plain", context=context)

    seconds["get_encrypted"] = _timed(get_encrypted)
    assert _sha256(work / "got") == digest == _sha256(work / "plain")
    shutil.rmtree(work)
    assert store.delete(TENANT, digest) and store.delete(TENANT, encrypted["digest"])
    return seconds


def measure_size(size_mib: int, rounds: int, directory: Path, keyring: Keyring) -> dict[str, Any]:
    size = size_mib * MiB
    source = directory / f"source-{size_mib}"
    with open(source, "wb") as file:
        for _ in range(size_mib):
            file.write(os.urandom(MiB))
    # One store for every round, with the directories of a store in use: all 256 shards exist
    # (encrypted blobs have a new digest every round, which would otherwise create one).
    store = LocalBlobStore(directory / f"store-{size_mib}")
    for shard in range(256):
        (store.root / TENANT / "sha256" / f"{shard:02x}").mkdir(parents=True)
    samples: dict[str, list[float]] = {}
    for index in range(rounds):
        work = directory / f"round-{size_mib}-{index}"
        work.mkdir()
        for name, value in one_round(source, work, store, keyring).items():
            samples.setdefault(name, []).append(value)
    source.unlink()
    median = {name: statistics.median(values) for name, values in samples.items()}
    figures: dict[str, Any] = {
        name: {"ms": round(value * 1e3, 2), "mib_per_s": round(size / MiB / value)}
        for name, value in median.items()
    }
    figures["ratios"] = {
        "put_over_copyfile": round(median["put"] / median["copyfile"], 2),
        "put_over_copyfile_fsync": round(median["put"] / median["copyfile_fsync"], 2),
        "put_over_copyfile_atomic": round(median["put"] / median["copyfile_atomic"], 2),
        "put_over_sha256_plus_copyfile_atomic": round(
            median["put"] / (median["sha256"] + median["copyfile_atomic"]), 2
        ),
        "get_over_sha256_plus_copyfile": round(
            median["get"] / (median["sha256"] + median["copyfile"]), 2
        ),
        "get_over_copyfile": round(median["get"] / median["copyfile"], 2),
        "put_over_one_thread_put": round(median["put"] / median["one_thread_put"], 2),
        "get_over_one_thread_get": round(median["get"] / median["one_thread_get"], 2),
        "get_bytes_over_read_bytes": round(median["get_bytes"] / median["read_bytes"], 2),
        "put_encrypted_over_put": round(median["put_encrypted"] / median["put"], 2),
        "get_encrypted_over_get": round(median["get_encrypted"] / median["get"], 2),
    }
    return figures


def _repeat(
    count: int, function: Callable[..., bytes], keyring: Keyring, value: bytes, context: str
) -> None:
    for _ in range(count):
        function(keyring, value, context=context)


def measure_envelope(values: int, rounds: int, keyring: Keyring) -> dict[str, Any]:
    """Microseconds per 64-byte column value, best of ``rounds``."""
    context = value_context("runs.parameters", TENANT)
    plaintext = os.urandom(64)
    encrypted = encrypt_value(keyring, plaintext, context=context)
    encrypt, decrypt = [], []
    for _ in range(rounds):
        encrypt.append(_timed(lambda: _repeat(values, encrypt_value, keyring, plaintext, context)))
        decrypt.append(_timed(lambda: _repeat(values, decrypt_value, keyring, encrypted, context)))
    return {
        "value_bytes": len(plaintext),
        "encrypt_us": round(min(encrypt) / values * 1e6, 2),
        "decrypt_us": round(min(decrypt) / values * 1e6, 2),
        "overhead_bytes": len(encrypted) - len(plaintext),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1,64", help="blob sizes in MiB, comma-separated")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per size (the median)")
    parser.add_argument("--values", type=int, default=20_000, help="values per envelope round")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (its filesystem)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.rounds < 1 or args.values < 1 or min(sizes) < 1:
        parser.error("--sizes, --rounds and --values must be at least 1")
    keyring = Keyring([("bench", os.urandom(32))])
    with tempfile.TemporaryDirectory(prefix="p2f-bench-", dir=args.dir) as directory:
        report: dict[str, Any] = {
            "rounds": args.rounds,
            "dir": str(Path(directory).parent),
            "blobs": {
                f"{size}MiB": measure_size(size, args.rounds, Path(directory), keyring)
                for size in sizes
            },
            "envelope": measure_envelope(args.values, args.rounds, keyring),
        }
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
