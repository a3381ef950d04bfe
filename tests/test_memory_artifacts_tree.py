"""Directory artifacts as tars: the same tree gives the same bytes, and unpacking refuses every
member that would land outside its destination, leaving nothing behind."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from plan2flow.memory.artifact_tree import extract_tree, replace_directory, write_tree
from plan2flow.memory.errors import MemoryStoreError, UnsafeArchive


def packed(root: Path) -> bytes:
    sink = io.BytesIO()
    write_tree(root, sink)
    return sink.getvalue()


def test_the_bytes_depend_on_names_contents_and_exec_bits_only(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for root, order in ((one, ("z", "a", "m/x")), (two, ("m/x", "z", "a"))):
        for name in order:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(f"content of {name}\n")
    os.utime(two / "z", (0, 0))
    (two / "a").chmod(0o600)
    (one / "m").chmod(0o700)
    assert hashlib.sha256(packed(one)).digest() == hashlib.sha256(packed(two)).digest()
    (two / "a").chmod(0o700)  # now executable: a different tree
    assert packed(one) != packed(two)
    with tarfile.open(fileobj=io.BytesIO(packed(one))) as tar:
        assert [m.name for m in tar] == ["a", "m", "z", "m/x"]
        assert [(m.mode, m.mtime) for m in tar] == [(0o644, 0), (0o755, 0), (0o644, 0), (0o644, 0)]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert packed(empty) == packed(empty)
    with pytest.raises(MemoryStoreError, match="is not a directory"):
        packed(one / "a")


def test_a_round_trip_keeps_names_contents_modes_and_links(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "é ü.txt").write_text("unicode names\n")
    (root / "empty").mkdir()
    (root / "bin" / "alias").symlink_to("tool")
    (root / "link-to-dir").symlink_to("bin")
    archive = tmp_path / "tree.tar"
    archive.write_bytes(packed(root))
    out = tmp_path / "out"
    assert extract_tree(archive, out) == 6
    assert (out / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert (out / "é ü.txt").read_text() == "unicode names\n"
    assert (out / "empty").is_dir()
    assert os.readlink(out / "bin" / "alias") == "tool"
    assert (out / "link-to-dir" / "tool").read_bytes() == b"#!/bin/sh\n"


def _tar(tmp_path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    path = tmp_path / "crafted.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            if data is not None:
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"payload") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = link
    return member, None


UNSAFE: dict[str, tuple[Callable[[], list[tuple[tarfile.TarInfo, bytes | None]]], str]] = {
    "absolute": (lambda: [_file("/tmp/owned")], "not a relative path"),
    "parent": (lambda: [_file("../owned")], "not a relative path"),
    "parent inside": (lambda: [_file("a/../../owned")], "not a relative path"),
    "empty part": (lambda: [_file("a//b")], "not a relative path"),
    "dot": (lambda: [_special(".", tarfile.DIRTYPE)], "not a relative path"),
    "absolute link": (lambda: [_special("l", tarfile.SYMTYPE, "/etc")], "a link to '/etc'"),
    "link up": (lambda: [_special("l", tarfile.SYMTYPE, "../..")], "resolves outside"),
    "link chain": (
        lambda: [
            _special("q", tarfile.SYMTYPE, "."),
            _special("p", tarfile.SYMTYPE, "q/.."),
        ],
        "resolves outside",
    ),
    "write through a link": (
        lambda: [_special("l", tarfile.SYMTYPE, "/tmp"), _file("l/owned")],
        "a link to '/tmp'",
    ),
    "link over a file": (
        lambda: [_file("f"), _special("f", tarfile.SYMTYPE, "..")],
        "appears twice",
    ),
    "file under a link": (
        lambda: [_special("d", tarfile.SYMTYPE, "sub"), _file("d/x")],
        "collides",
    ),
    "hard link": (lambda: [_file("f"), _special("h", tarfile.LNKTYPE, "f")], "hard links"),
    "device": (lambda: [_special("dev", tarfile.CHRTYPE)], "devices are refused"),
    "fifo": (lambda: [_special("pipe", tarfile.FIFOTYPE)], "neither a directory"),
    "duplicate": (lambda: [_file("a"), _file("a")], "appears twice"),
    "file under a file": (lambda: [_file("a"), _file("a/b")], "collides"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_an_unsafe_member_is_refused_and_nothing_is_left(tmp_path: Path, case: str) -> None:
    build, message = UNSAFE[case]
    archive = _tar(tmp_path, *build())
    outside = tmp_path / "owned"
    destination = tmp_path / "dest" / "tree"
    destination.parent.mkdir()
    with pytest.raises(UnsafeArchive, match=message):
        extract_tree(archive, destination)
    assert not destination.exists() and not outside.exists()
    assert list(destination.parent.iterdir()) == []


def test_what_is_not_a_tar_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "junk.tar"
    archive.write_bytes(b"\x00not a tar" * 100)
    with pytest.raises(UnsafeArchive, match="not a readable tar archive"):
        extract_tree(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_directory_replaces_only_nothing_or_an_empty_directory(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / "new" / name).mkdir(parents=True)
    replace_directory(tmp_path / "new" / "a", tmp_path / "fresh")
    (tmp_path / "empty").mkdir()
    replace_directory(tmp_path / "new" / "b", tmp_path / "empty")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("mine")
    (tmp_path / "file").write_text("mine")
    for taken in ("full", "file"):
        with pytest.raises(MemoryStoreError, match="exists"):
            replace_directory(tmp_path / "new" / "c", tmp_path / taken)
    assert (tmp_path / "full" / "keep").read_text() == (tmp_path / "file").read_text() == "mine"
