"""What an artifact says about itself, decided without I/O: who produced it, its media type
(guessed from its name), its expiry, and durations as people write them (``90s``, ``30d``)."""

from __future__ import annotations

import datetime as dt
import mimetypes
import re
import uuid
from dataclasses import dataclass

from .errors import MemoryStoreError

DEFAULT_MEDIA_TYPE = "application/octet-stream"
KINDS_MAX = 64
_KIND = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

# Python's own table only (never the machine's /etc/mime.types, which differs between hosts),
# plus the names plan2flow's tasks produce that the table lacks.
_TABLE = mimetypes.MimeTypes(filenames=())
_EXTRA = {
    ".whl": "application/zip",
    ".jsonl": "application/jsonl",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".log": "text/plain",
    ".md": "text/markdown",
    ".gz": "application/gzip",
    ".tgz": "application/gzip",
    ".sarif": "application/sarif+json",
    ".cdx.json": "application/vnd.cyclonedx+json",
    ".spdx.json": "application/spdx+json",
}


@dataclass(frozen=True)
class Producer:
    """Who made an artifact: the plan, its graph hash, the run and the task (all optional)."""

    plan: str = ""
    run_id: uuid.UUID | None = None
    task_id: str = ""
    graph_hash: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.run_id, str):
            object.__setattr__(self, "run_id", uuid.UUID(self.run_id))
        object.__setattr__(self, "graph_hash", check_graph_hash(self.graph_hash))


def check_graph_hash(value: str) -> str:
    """A graph hash as the row keeps it: 64 hex digits, without the ``sha256:`` prefix.

    >>> check_graph_hash("sha256:" + "ab" * 32) == "ab" * 32
    True
    """
    bare = value.removeprefix("sha256:")
    if bare and not _HEX64.fullmatch(bare):
        raise MemoryStoreError(f"graph hash {value!r} is not sha256:<64 hex digits>")
    return bare


def check_kind(kind: str) -> str:
    """``kind`` when it is a short lowercase word (``file``, ``wheel``, ``sbom``, ``test-report``).

    >>> check_kind("sbom")
    'sbom'
    """
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise MemoryStoreError(
            f"kind {kind!r} is not 1 to {KINDS_MAX} lowercase letters, digits, '_', '.' or '-'"
        )
    return kind


def guess_media_type(name: str) -> str:
    """The media type of a file called ``name``, the same on every machine.

    >>> guess_media_type("report.json"), guess_media_type("bom.cdx.json")
    ('application/json', 'application/vnd.cyclonedx+json')
    >>> guess_media_type("pkg-1.0-py3-none-any.whl"), guess_media_type("README")
    ('application/zip', 'application/octet-stream')
    """
    lowered = name.lower()
    for suffix in sorted(_EXTRA, key=len, reverse=True):
        if lowered.endswith(suffix):
            return _EXTRA[suffix]
    media_type, _ = _TABLE.guess_type(lowered, strict=False)
    return media_type or DEFAULT_MEDIA_TYPE


def parse_duration(text: str) -> dt.timedelta:
    """A duration as ``90s``, ``15m``, ``2h``, ``30d`` or ``2w``.

    >>> parse_duration("36h")
    datetime.timedelta(days=1, seconds=43200)
    """
    found = _DURATION.fullmatch(text.strip())
    if not found:
        raise MemoryStoreError(
            f"duration {text!r} is not a number and a unit: 90s, 15m, 2h, 30d, 2w"
        )
    return dt.timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def expiry(expires: dt.datetime | dt.timedelta | None, now: dt.datetime) -> dt.datetime | None:
    """The moment an artifact expires: ``expires`` itself, or ``now`` plus a duration."""
    if expires is None:
        return None
    if isinstance(expires, dt.timedelta):
        return now + expires
    if expires.tzinfo is None:
        raise MemoryStoreError("`expires` needs a time zone (a naive time would be a guess)")
    return expires
