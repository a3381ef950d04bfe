"""Directory artifacts: a tree as a deterministic tar, and its safe unpacking.

:func:`write_tree` packs a directory so that the same tree always gives the same bytes, hence
the same digest: members in sorted order (a directory, then its entries), times, owners and
group names zeroed, modes reduced to ``0755``/``0644`` (``0777`` for links), PAX format. Only
directories, regular files and relative symbolic links that stay inside the tree are packed;
anything else (a device, a socket, a link out of the tree) is refused before a byte is written.

:func:`extract_tree` unpacks into a fresh directory and never trusts the archive: every member
name must be relative with no ``..``, no two members may share a name, only directories,
regular files and symbolic links are accepted, files and directories are written before any
link exists (so nothing is written through a link), and every link must resolve inside the
destination once all are made. Anything else raises :class:`UnsafeArchive` and leaves nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .blobs import copy_chunks, write_all
from .errors import MemoryStoreError, UnsafeArchive

TAR_MEDIA_TYPE = "application/x-tar"
_NOFOLLOW_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW


def _inside(relative_link: PurePosixPath, target: str) -> bool:
    """Whether a link at ``relative_link`` (below the root) pointing to ``target`` stays below
    the root, read lexically (the tree being packed is ours: no link in it is followed)."""
    if not target or os.path.isabs(target):
        return False
    joined = os.path.normpath(os.path.join(str(relative_link.parent), target))
    return joined != ".." and not joined.startswith("../")


def _entries(root: Path) -> Iterator[tuple[PurePosixPath, Path, os.stat_result]]:
    """Every entry below ``root``, depth first, each directory's entries sorted by name."""
    stack = [(PurePosixPath(), root)]
    while stack:
        relative, directory = stack.pop()
        names = sorted(os.listdir(directory))
        children = []
        for name in names:
            path = directory / name
            info = os.lstat(path)
            yield relative / name, path, info
            if stat.S_ISDIR(info.st_mode):
                children.append((relative / name, path))
        stack.extend(reversed(children))


def _member(name: PurePosixPath, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(str(name))
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tree(root: Path, sink: BinaryIO) -> int:
    """Pack the directory ``root`` into ``sink`` as a deterministic tar; the number of members.
    A tree holding anything but directories, regular files and links inside it is refused
    (MemoryStoreError naming the entry)."""
    if not root.is_dir():
        raise MemoryStoreError(f"{root} is not a directory")
    members = 0
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name, path, info in _entries(root):
            mode = info.st_mode
            if stat.S_ISDIR(mode):
                tar.addfile(_member(name, tarfile.DIRTYPE, 0o755))
            elif stat.S_ISREG(mode):
                member = _member(name, tarfile.REGTYPE, 0o755 if mode & 0o111 else 0o644)
                member.size = info.st_size
                with open(path, "rb") as data:
                    tar.addfile(member, data)
            elif stat.S_ISLNK(mode):
                target = os.readlink(path)
                if not _inside(name, target):
                    raise MemoryStoreError(
                        f"{path}: a symbolic link out of the directory ({target!r}): a directory "
                        "artifact keeps links inside itself"
                    )
                member = _member(name, tarfile.SYMTYPE, 0o777)
                member.linkname = target
                tar.addfile(member)
            else:
                raise MemoryStoreError(
                    f"{path}: neither a directory, a regular file nor a symbolic link: a "
                    "directory artifact cannot hold it"
                )
            members += 1
    return members


def _checked_name(member: tarfile.TarInfo, seen: set[PurePosixPath]) -> PurePosixPath:
    raw = member.name
    name = PurePosixPath(raw)
    if (
        not raw
        or "\x00" in raw
        or name.is_absolute()
        or raw.startswith("/")
        or any(part in ("..", "") for part in raw.rstrip("/").split("/"))
        or name == PurePosixPath(".")
    ):
        raise UnsafeArchive(f"archive member {raw!r}: not a relative path without '..'")
    if name in seen:
        raise UnsafeArchive(f"archive member {raw!r} appears twice")
    seen.add(name)
    return name


def _check_member(member: tarfile.TarInfo, seen: set[PurePosixPath]) -> PurePosixPath:
    name = _checked_name(member, seen)
    if member.issym():
        if not member.linkname or os.path.isabs(member.linkname) or "\x00" in member.linkname:
            raise UnsafeArchive(
                f"archive member {member.name!r}: a link to {member.linkname!r}, outside"
            )
    elif not (member.isreg() or member.isdir()):
        raise UnsafeArchive(
            f"archive member {member.name!r}: neither a directory, a regular file nor a "
            "symbolic link (hard links and devices are refused)"
        )
    return name


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    if member.isdir():
        path.mkdir(mode=0o755, exist_ok=True)
        return
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - a regular member always has data
        raise UnsafeArchive(f"archive member {member.name!r} has no data")
    fd = os.open(path, _NOFOLLOW_CREATE, 0o755 if member.mode & 0o111 else 0o644)
    try:
        with source:
            copy_chunks(source, write_all(fd))  # type: ignore[arg-type]
    finally:
        os.close(fd)


def extract_tree(archive: Path, destination: Path) -> int:
    """Unpack the tar ``archive`` into ``destination``, which must not exist (its parent must);
    the number of members. On any refusal (:class:`UnsafeArchive`) or error, nothing is left."""
    destination.mkdir(mode=0o755)
    try:
        return _extract_into(archive, destination)
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise


def _extract_into(archive: Path, destination: Path) -> int:
    root = Path(os.path.realpath(destination))
    seen: set[PurePosixPath] = set()
    links: list[tuple[Path, str]] = []
    try:
        with tarfile.open(archive, mode="r:", encoding="utf-8") as tar:
            for member in tar:
                name = _check_member(member, seen)
                path = root.joinpath(*name.parts)
                if member.issym():
                    links.append((path, member.linkname))
                    continue
                try:
                    _write_member(tar, member, path)
                except (FileExistsError, NotADirectoryError) as error:
                    raise UnsafeArchive(
                        f"archive member {member.name!r} collides with another member"
                    ) from error
    except tarfile.TarError as error:
        raise UnsafeArchive(f"{archive.name}: not a readable tar archive ({error})") from error
    for path, target in links:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            os.symlink(target, path)
        except FileExistsError as error:
            raise UnsafeArchive(f"link {path.relative_to(root)} collides with a member") from error
    for path, target in links:  # with every link in place: chains of links resolve for real
        resolved = Path(os.path.realpath(path))
        if resolved != root and root not in resolved.parents:
            raise UnsafeArchive(
                f"archive member {path.relative_to(root).as_posix()!r}: a link to {target!r} "
                "resolves outside the destination"
            )
    return len(seen)


def replace_directory(source: Path, destination: Path) -> None:
    """Move the directory ``source`` to ``destination``, which may be missing or an empty
    directory (a rename: atomic on one filesystem); anything else there is refused."""
    with contextlib.suppress(FileNotFoundError, OSError):
        if destination.is_dir() and not destination.is_symlink():
            destination.rmdir()  # only when empty: OSError otherwise, reported below
    if destination.exists() or destination.is_symlink():
        raise MemoryStoreError(
            f"{destination} exists: a directory artifact goes to a new or empty directory"
        )
    os.rename(source, destination)
