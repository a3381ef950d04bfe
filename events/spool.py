"""The local spool: where events go while the NATS bus is down.

One append-only file of JSON lines (``<PLAN2FLOW_HOME>/events/spool.jsonl``, one CloudEvents
JSON event per line), each append flushed to disk with ``fsync`` before ``publish`` returns, and
a file beside it holding how many bytes of it were already published (``spool.offset``). Several
processes share it: appends and flushes take an exclusive ``flock`` on ``spool.lock``, a flush
only for one batch at a time, so an append waits for at most one batch.

It is bounded (``max_bytes``, 64 MiB by default): an event that would grow it beyond that is not
written, and is counted and logged as dropped. A flush publishes the unpublished lines in order
through a callback, batch by batch, and records its progress after every batch; a crash in the
middle re-publishes at most one batch, which the stream's duplicate window (the ids are the
``Nats-Msg-Id``) recognises. Once everything is published the files are emptied. A line that is
not an event (a torn write after a crash) is skipped and counted as ``corrupt``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from plan2flow.events.envelope import Event, decode_event
from plan2flow.events.errors import InvalidEvent

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
BATCH = 500


@dataclass(frozen=True)
class FlushReport:
    """What a flush did: events published, recognised as duplicates, skipped as corrupt, and
    events still waiting (when the bus failed in the middle)."""

    published: int = 0
    duplicates: int = 0
    corrupt: int = 0
    remaining: int = 0


PublishBatch = Callable[[Sequence[Event]], Sequence[bool]]
"""Publishes events in order; returns for each whether it was a duplicate. Raises when the bus
fails: the batch stays in the spool."""


class Spool:
    """An append-only, fsync'd, bounded file of events waiting for the bus."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.path = directory / "spool.jsonl"
        self.offset_path = directory / "spool.offset"
        self.lock_path = directory / "spool.lock"
        self.dropped = 0
        self.appended = 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, event: Event) -> bool:
        """Write ``event`` durably; False (counted in ``dropped``) when the spool is full."""
        return self.append_many([event]) == 1

    def append_many(self, events: Sequence[Event]) -> int:
        """Write ``events`` in order with one ``fsync``; how many were written (the first ones:
        those that did not fit are counted in ``dropped``)."""
        if not events:
            return 0
        lines = [event.to_json() + b"\n" for event in events]
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                size = os.fstat(fd).st_size
                room = self.max_bytes - size
                taken: list[bytes] = []
                for line in lines:
                    if len(line) > room:
                        break
                    taken.append(line)
                    room -= len(line)
                self.dropped += len(lines) - len(taken)
                if not taken:
                    return 0
                data = b"".join(taken)
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a torn last line (a crash): keep ours whole
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if size == 0:
                _fsync_directory(self.directory)
        self.appended += len(taken)
        return len(taken)

    def _offset(self) -> int:
        try:
            return int(self.offset_path.read_text("ascii") or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _set_offset(self, offset: int) -> None:
        temporary = self.offset_path.with_suffix(".tmp")
        with open(temporary, "w", encoding="ascii") as file:
            file.write(str(offset))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.offset_path)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def pending(self) -> int:
        """How many events wait to be published."""
        with self._locked():
            return sum(1 for _ in self._lines(self._offset(), self._size()))

    def is_empty(self) -> bool:
        return self._size() <= self._offset()

    def _lines(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(offset after the line, line) of the complete lines between start and end."""
        if end <= start:
            return
        with open(self.path, "rb") as file:
            file.seek(start)
            position = start
            while position < end:
                line = file.readline()
                if not line.endswith(b"\n"):
                    return  # an append in progress elsewhere cannot be: we hold the lock
                position += len(line)
                if line.strip():
                    yield position, line

    def read(self) -> list[Event]:
        """The events waiting, in order (corrupt lines left out)."""
        with self._locked():
            events = []
            for _, line in self._lines(self._offset(), self._size()):
                with contextlib.suppress(InvalidEvent):
                    events.append(decode_event(line))
            return events

    def flush(self, publish: PublishBatch, *, batch: int = BATCH) -> FlushReport:
        """Publish the waiting events in order, ``batch`` at a time; see the module's text."""
        published = duplicates = corrupt = 0
        while True:
            with self._locked():
                start, end = self._offset(), self._size()
                if end <= start:
                    self._truncate()
                    return FlushReport(published, duplicates, corrupt, 0)
                events: list[Event] = []
                stop = start
                for position, line in self._lines(start, end):
                    stop = position
                    try:
                        events.append(decode_event(line))
                    except InvalidEvent:
                        corrupt += 1
                    if len(events) >= batch:
                        break
                if not events and stop == start:  # only a torn tail: drop it
                    self._truncate()
                    return FlushReport(published, duplicates, corrupt, 0)
                try:
                    flags = publish(events) if events else []
                except Exception:
                    remaining = sum(1 for _ in self._lines(start, end))
                    return FlushReport(published, duplicates, corrupt, remaining)
                duplicates += sum(1 for flag in flags if flag)
                published += len(events) - sum(1 for flag in flags if flag)
                self._set_offset(stop)

    def _truncate(self) -> None:
        # The offset first: a crash in between re-publishes (duplicates), never skips.
        self._set_offset(0)
        if self.path.exists():
            with open(self.path, "r+b") as file:
                file.truncate(0)
                os.fsync(file.fileno())


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
