"""`plan2flow audit ...`: export the audit journal, verify its hash chain, feed it from NATS
(see docs/memory.md).

Exit statuses: 0 done; 1 `verify` found the chain broken (the first bad entry on stderr); 2 usage
(a bad `--since`, a tenant that is not a DNS label or does not exist, `follow` without
`PLAN2FLOW_EVENTS_URL`); 3 the database or the bus cannot be reached; 4 the schema is behind;
130 `follow` stopped by Ctrl-C (143 by SIGTERM), after the event in hand.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import IO, Annotated, NoReturn

import typer

from .app import EXIT_INVALID, EXIT_USAGE, app, consoles, nonempty_path, say
from .events_commands import parse_since
from .memory_options import TenantOption
from .memory_options import memory_database as _database
from .memory_options import resolve_tenant as _tenant

audit_app = typer.Typer(
    help="The audit journal: export it, verify its hash chain, feed it from the event bus "
    "(see docs/memory.md).",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


class ExportFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def _stop(message: str, status: int) -> NoReturn:
    say(consoles()[1], f"plan2flow: {message}")
    raise typer.Exit(status)


@contextlib.contextmanager
def _atomic_text(path: Path) -> Iterator[IO[str]]:
    """A text file that appears at `path` complete (written beside it, synced, renamed) or
    not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@audit_app.command("export")
def audit_export(
    format: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", help="One JSON array, JSON lines, or CSV with a header."),
    ] = ExportFormat.jsonl,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only entries from this time on: 2026-11-30T09:00:00Z, or ago: 90s, 15m, 2h, 1d.",
            show_default=False,
        ),
    ] = None,
    tenant: TenantOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            parser=nonempty_path("--output"),
            help="Write to this file (complete or not at all) instead of stdout.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a tenant's audit journal, oldest first.

    Every field and the hash of each entry are written, so an export can be verified on its
    own."""
    from plan2flow.memory import audit

    start: dt.datetime | None = None
    if since is not None:
        try:
            start = parse_since(since)
        except ValueError as error:
            _stop(f"--since {since!r}: {error}", EXIT_USAGE)
    name = _tenant(tenant)
    with _database() as database, database.session(name) as session:
        entries = audit.entries(session, name, since=start)
        if output is None:
            count = audit.export(entries, sys.stdout, format.value)
        else:
            with _atomic_text(output) as stream:
                count = audit.export(entries, stream, format.value)
    where = "" if output is None else f" to {output}"
    say(consoles()[1], f"exported {count} audit entries of tenant {name}{where}")


@audit_app.command("verify")
def audit_verify(tenant: TenantOption = None) -> None:
    """Check a tenant's hash chain; exit 1 at the first entry tampered with.

    Exit 0 with the count and the head (keep the head elsewhere: a journal cut at its end can
    only be told from it), exit 1 naming the first entry that was edited, removed, inserted or
    reordered."""
    from plan2flow.memory import audit
    from plan2flow.memory.errors import AuditTampered

    name = _tenant(tenant)
    with _database() as database, database.session(name) as session:
        try:
            walk = audit.verify(session, name)
        except AuditTampered as error:
            _stop(str(error), EXIT_INVALID)
    say(
        consoles()[0],
        f"tenant {name}: {walk.count} audit entries intact; head seq {walk.last_seq} {walk.head}",
    )


@audit_app.command("follow")
def audit_follow(tenant: TenantOption = None) -> None:
    """Record a tenant's events from NATS in its audit journal, until Ctrl-C.

    Run, task and artifact events become entries. A durable consumer (one per tenant) resumes
    where it stopped; an event is recorded once however often it is delivered."""
    from plan2flow.events import admin
    from plan2flow.events.errors import NatsRequired
    from plan2flow.memory.audit_feed import durable_name, follow

    settings = admin.settings_from_env()
    if settings is None:
        raise NatsRequired(
            "audit follow needs the NATS bus: set PLAN2FLOW_EVENTS_URL (nats://host:4222)"
        )
    name = _tenant(tenant)
    stop = threading.Event()
    received: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()
        signal.signal(signum, signal.default_int_handler)  # a second one does not wait

    errors = consoles()[1]
    with _database() as database, _handling((signal.SIGINT, signal.SIGTERM), request_stop):
        database.require_tenant(name)
        say(
            errors,
            f"following the events of tenant {name} into its audit journal (durable consumer "
            f"{durable_name(name)}); Ctrl-C to stop",
        )
        try:
            report = follow(database, name, settings, stop=stop)
        except KeyboardInterrupt:
            raise typer.Exit(128 + signal.SIGINT) from None
    say(
        errors,
        f"followed {report.handled} events ({report.failed} failed, {report.dead_lettered} "
        "dead-lettered)",
    )
    if received:
        raise typer.Exit(128 + received[0])


@contextlib.contextmanager
def _handling(
    signals: tuple[signal.Signals, ...], handler: Callable[[int, FrameType | None], None]
) -> Iterator[None]:
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
