"""`plan2flow events ...`: follow, replay and manage the event bus (see docs/events.md).

Each command parses its arguments, calls one function of `plan2flow.events.admin`, and prints
what it returns. Errors end the command in one line on stderr with a status of their own:
2 usage (a bad pattern or time, NATS needed but `PLAN2FLOW_EVENTS_URL` unset), 3 the NATS bus
cannot be reached, 4 the server cannot do what was asked, 1 something asked for is not there
(`dlq show`) or was not done (`flush` left events in the spool), 130 Ctrl-C.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from .app import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_USAGE, app, consoles, say

if TYPE_CHECKING:
    from plan2flow.events import Event
    from plan2flow.events.admin import DeadLetter, StoredEvent

EXIT_BUS_UNAVAILABLE = 3
EXIT_UNSUPPORTED_SERVER = 4

events_app = typer.Typer(
    help="Follow, replay and manage plan2flow events (the event bus, see docs/events.md).",
    no_args_is_help=True,
)
app.add_typer(events_app, name="events")
dlq_app = typer.Typer(
    help="The dead-letter queue: events that no consumer could handle (NATS only).",
    no_args_is_help=True,
)
events_app.add_typer(dlq_app, name="dlq")


class StreamFormat(StrEnum):
    text = "text"
    json = "json"


FormatOption = Annotated[
    StreamFormat,
    typer.Option("--format", "-f", help="`text` for people, `json` for tools."),
]
PatternArgument = Annotated[
    str,
    typer.Argument(
        help="A subject pattern: `*` is one token, `>` the rest (`plan2flow.acme.>`, "
        "`plan2flow.*.etl.task.*`).",
        show_default=True,
    ),
]


def _stop(message: str, status: int) -> NoReturn:
    say(consoles()[1], f"plan2flow: {message}")
    raise typer.Exit(status)


@contextlib.contextmanager
def _bus_errors() -> Iterator[None]:
    """The event bus's errors as one line on stderr and an exit status; Ctrl-C as 130."""
    from plan2flow.events import (
        BusUnavailable,
        InvalidSubject,
        NatsRequired,
        UnsupportedServer,
    )

    try:
        yield
    except NatsRequired as error:
        _stop(str(error), EXIT_USAGE)
    except BusUnavailable as error:
        _stop(str(error), EXIT_BUS_UNAVAILABLE)
    except UnsupportedServer as error:
        _stop(str(error), EXIT_UNSUPPORTED_SERVER)
    except InvalidSubject as error:
        _stop(str(error), EXIT_USAGE)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _pattern(value: str) -> str:
    from plan2flow.events import InvalidSubject, check_pattern

    try:
        return check_pattern(value)
    except InvalidSubject as error:
        _stop(str(error), EXIT_USAGE)


_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """A time as given to `--since`: ISO 8601 with a UTC offset (`2026-11-30T09:00:00Z`,
    `…+02:00`) or a duration ago (`90s`, `15m`, `2h`, `1d`); :class:`ValueError` otherwise.

    >>> parse_since("2026-11-30T09:00:00Z").isoformat()
    '2026-11-30T09:00:00+00:00'
    >>> parse_since("15m", dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)).isoformat()
    '2026-01-01T11:45:00+00:00'
    """
    text = value.strip()
    ago = _AGO.match(text)
    if ago:
        current = now or dt.datetime.now(dt.UTC)
        return current - dt.timedelta(seconds=float(ago.group(1)) * _UNITS[ago.group(2)])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "not a time: give ISO 8601 with a UTC offset (2026-11-30T09:00:00Z) or a "
            "duration ago (90s, 15m, 2h, 1d)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError("the time has no UTC offset: add Z or +HH:MM (2026-11-30T09:00:00Z)")
    return moment


def _event_line(event: Event) -> str:
    """One line per event: time, type, tenant/plan, run, task and attempt, then the data."""
    parts = [
        event.time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        event.type.removeprefix("plan2flow."),
        f"{event.tenant}/{event.plan}",
    ]
    if event.flowrunid:
        parts.append(f"run={event.flowrunid}")
    if event.taskid is not None:
        parts.append(f"task={event.taskid}")
    if event.attempt is not None:
        parts.append(f"attempt={event.attempt}")
    data = event.to_dict().get("data")
    if data:
        parts.append(json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    return "  ".join(parts)


def _envelope(event: Event) -> str:
    return event.to_json().decode("utf-8")


# --- tail and replay -------------------------------------------------------------------------


@contextlib.contextmanager
def _interrupted_by_sigint() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt while following, even when the process was started with
    SIGINT ignored (from a script's background job), as `plan2flow run` and `up` do: a follower
    that no signal but SIGKILL can stop is a trap."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _StreamConsole(Console):
    """stdout of the commands that stream lines (tail, replay): once its reader has gone
    (`plan2flow events tail | head -1`) the command ends quietly with status 0, as Unix tools
    do, where rich ends with status 1. Nothing more goes to the closed pipe, not even at exit:
    stdout then points at /dev/null."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise typer.Exit(0)


@events_app.command("tail")
def events_tail(
    pattern: PatternArgument = ">",
    output: FormatOption = StreamFormat.text,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="Stop after this many events.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Stop after this many seconds without an event."),
    ] = None,
) -> None:
    """Print events live as they are published, until Ctrl-C (or --limit, --timeout).

    With PLAN2FLOW_EVENTS_URL, every event stored in the NATS stream from now on; without it,
    only the in-process events of runs started by this process."""
    with _interrupted_by_sigint():  # before the first line, which says it is following
        try:
            _tail(_pattern(pattern), output, limit, timeout)
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_INTERRUPTED) from None


def _tail(pattern: str, output: StreamFormat, limit: int | None, timeout: float | None) -> None:
    from plan2flow.events import admin

    checked = pattern
    console, errors = _StreamConsole(), consoles()[1]
    if admin.settings_from_env() is None:
        say(
            errors,
            "plan2flow: PLAN2FLOW_EVENTS_URL is not set: without NATS only the in-process events "
            "of runs started by this process are visible (set PLAN2FLOW_EVENTS_URL="
            "nats://host:4222 to follow every run)",
        )
    following = admin.tail(checked, timeout=timeout, limit=limit)
    with _bus_errors(), contextlib.closing(following) as it:
        for event in it:
            say(console, _envelope(event) if output is StreamFormat.json else _event_line(event))


@events_app.command("replay")
def events_replay(
    pattern: PatternArgument = ">",
    from_seq: Annotated[
        int | None,
        typer.Option("--from-seq", min=1, help="Start at this stream sequence."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Start at this time: 2026-11-30T09:00:00Z, or ago: 90s, 15m, 2h, 1d."
        ),
    ] = None,
    output: FormatOption = StreamFormat.text,
) -> None:
    """Print the stored events from a stream sequence or a time, up to the last one stored when
    the command began (NATS only). `--format json`: one CloudEvents envelope per line."""
    from plan2flow.events import admin

    checked = _pattern(pattern)
    if (from_seq is None) == (since is None):
        _stop("replay needs exactly one of --from-seq N and --since TIME", EXIT_USAGE)
    start: dt.datetime | None = None
    if since is not None:
        try:
            start = parse_since(since)
        except ValueError as error:
            _stop(f"--since {since!r}: {error}", EXIT_USAGE)
    console, errors = _StreamConsole(), consoles()[1]
    records = admin.replay(checked, from_seq=from_seq, since=start)
    with _bus_errors(), contextlib.closing(records):
        for record in records:
            _print_record(record, output, console, errors)


def _print_record(record: StoredEvent, output: StreamFormat, console: Any, errors: Any) -> None:
    if record.event is None:
        say(errors, f"plan2flow: seq {record.seq} ({record.subject}): not an event: {record.error}")
        return
    if output is StreamFormat.json:
        say(console, _envelope(record.event))
    else:
        say(console, f"{record.seq}  {_event_line(record.event)}")


# --- the dead-letter queue -------------------------------------------------------------------


def _letter_line(letter: DeadLetter) -> str:
    return (
        f"{letter.seq}  {letter.reason}  consumer={letter.consumer}  "
        f"deliveries={letter.deliveries}  seq={letter.original_seq}  {letter.subject}  "
        f"{letter.error}"
    )


@dlq_app.command("list")
def dlq_list(output: FormatOption = StreamFormat.text) -> None:
    """List the dead letters, oldest first: DLQ sequence, reason, consumer, deliveries, the
    original stream sequence and subject, the error."""
    from plan2flow.events import admin

    console, errors = consoles()
    with _bus_errors():
        letters = admin.dlq_list()
    if output is StreamFormat.json:
        say(console, json.dumps([x.to_dict() for x in letters], sort_keys=True, indent=2))
        return
    for letter in letters:
        say(console, _letter_line(letter))
    say(errors, f"{len(letters)} dead letter(s)")


@dlq_app.command("show")
def dlq_show(
    seq: Annotated[int, typer.Argument(min=1, help="The dead letter's DLQ sequence.")],
    output: FormatOption = StreamFormat.text,
) -> None:
    """Show one dead letter: where it came from, why, and its bytes."""
    from plan2flow.events import admin

    console, _ = consoles()
    with _bus_errors():
        try:
            letter = admin.dlq_show(seq)
        except KeyError as error:
            _stop(str(error.args[0]), EXIT_INVALID)
    record = letter.to_dict()
    if output is StreamFormat.json:
        say(console, json.dumps(record, sort_keys=True, indent=2))
        return
    for key in (
        "seq",
        "reason",
        "error",
        "consumer",
        "deliveries",
        "original_seq",
        "subject",
        "event_id",
        "filed",
    ):
        say(console, f"{key}: {record[key]}")
    say(console, f"data: {record['data']}")


@dlq_app.command("retry")
def dlq_retry(
    seqs: Annotated[
        list[int] | None,
        typer.Argument(help="DLQ sequences (default: every dead letter).", show_default=False),
    ] = None,
) -> None:
    """Publish dead letters again to their original subjects, as new messages, and remove them
    from the DLQ (consumers that handled an event skip it by its id)."""
    from plan2flow.events import admin

    console, errors = consoles()
    with _bus_errors():
        done = admin.dlq_retry(seqs or None)
    for old, new in done:
        say(console, f"{old} → stream seq {new}")
    say(errors, f"{len(done)} dead letter(s) retried")


@dlq_app.command("purge")
def dlq_purge(
    seqs: Annotated[
        list[int] | None, typer.Argument(help="DLQ sequences.", show_default=False)
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Remove every dead letter.")] = False,
) -> None:
    """Remove dead letters: the SEQs given, or every one with --all."""
    from plan2flow.events import admin

    if bool(seqs) == everything:
        _stop("dlq purge needs SEQ... or --all (not both)", EXIT_USAGE)
    console, _ = consoles()
    with _bus_errors():
        removed = admin.dlq_purge(seqs or None)
    say(console, f"{removed} dead letter(s) removed")


# --- the spool and the numbers ---------------------------------------------------------------


@events_app.command("flush")
def events_flush() -> None:
    """Publish the events waiting in the local spool (written while the bus was down), in
    order, each once. Exit 1 when some remain (the bus failed in the middle)."""
    from plan2flow.events import admin

    console, _ = consoles()
    with _bus_errors():
        report = admin.flush()
    say(
        console,
        f"published {report.published}, duplicates {report.duplicates}, corrupt "
        f"{report.corrupt}, remaining {report.remaining}",
    )
    if report.remaining:
        raise typer.Exit(EXIT_INVALID)


@events_app.command("stats")
def events_stats(output: FormatOption = StreamFormat.text) -> None:
    """The events stream, every durable consumer (pending, awaiting ack, redelivered), the
    DLQ's size and the local spool (NATS only)."""
    from plan2flow.events import admin

    console, _ = consoles()
    with _bus_errors():
        numbers = admin.stats()
    if output is StreamFormat.json:
        say(console, json.dumps(numbers, sort_keys=True, indent=2))
        return
    stream = numbers["stream"]
    say(console, f"server: nats-server {numbers['server_version']}")
    say(
        console,
        f"stream {stream['name']}: {stream['messages']} messages, {stream['bytes']} bytes, "
        f"seq {stream['first_seq']}..{stream['last_seq']}, {stream['replicas']} replica(s)",
    )
    for consumer in numbers["consumers"]:
        say(
            console,
            f"consumer {consumer['name']}: {consumer['pending']} pending, "
            f"{consumer['ack_pending']} awaiting ack, {consumer['redelivered']} redelivered, "
            f"filter {consumer['filter'] or '>'}",
        )
    say(console, f"dlq {numbers['dlq']['name']}: {numbers['dlq']['messages']} dead letter(s)")
    say(console, f"spool {numbers['spool']['path']}: {numbers['spool']['pending']} pending")
