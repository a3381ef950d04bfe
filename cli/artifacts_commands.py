"""`plan2flow artifacts ...`: list, show, get, remove and collect the artifacts of project
memory (see docs/memory.md#artifact-store).

Exit statuses: 0 done; 2 usage (a bad label, time, duration or cursor, a tenant that is not a
DNS label or does not exist, no such artifact, a destination in the way); 3 the database or the
blob store cannot be reached; 4 the schema is behind; 5 a blob corrupted or an archive member
that would land outside its destination; 6 a master key missing or a decryption failure.
Errors of project memory end the command through ``main()`` in one line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Column, Table

from .app import EXIT_USAGE, app, consoles, nonempty_path, say
from .db_commands import ListFormat
from .events_commands import parse_since
from .memory_options import TenantOption, resolve_tenant

if TYPE_CHECKING:
    from plan2flow.memory.artifact_gc import GcReport
    from plan2flow.memory.artifacts import ArtifactStore
    from plan2flow.memory.db.models import ArtifactRecord

artifacts_app = typer.Typer(
    help="The artifact store of project memory: list, show, get, rm, gc (see docs/memory.md).",
    no_args_is_help=True,
)
app.add_typer(artifacts_app, name="artifacts")

IdArgument = Annotated[
    str, typer.Argument(help="The artifact's id, or a sha256 digest of it (stored or content).")
]
PIPE_WIDTH = 200
FormatOption = Annotated[
    ListFormat, typer.Option("--format", "-f", help="`text` for people, `json` for tools.")
]


def _stop(message: str, status: int = EXIT_USAGE) -> NoReturn:
    say(consoles()[1], f"plan2flow: {message}")
    raise typer.Exit(status)


@contextlib.contextmanager
def _store(tenant: str | None) -> Iterator[ArtifactStore]:
    from plan2flow.memory.artifacts import open_artifact_store

    with open_artifact_store(tenant=resolve_tenant(tenant)) as store:
        store.database.require_tenant(store.tenant)
        yield store


def _size(size: int) -> str:
    """Bytes for people: ``812 B``, ``4.2 KiB``, ``1.0 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _wide(console: Console) -> Console:
    """A console that does not squeeze tables into 80 columns when writing to a pipe or a file
    (ids and digests are copied from there); a terminal keeps its own width."""
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    return console


def _moment(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%MZ") if value else ""


def record_fields(record: ArtifactRecord) -> dict[str, Any]:
    """An artifact's metadata as JSON-ready fields (never its wrapped key)."""
    return {
        "id": str(record.id),
        "tenant": record.tenant,
        "name": record.name,
        "kind": record.kind,
        "media_type": record.media_type,
        "size": record.size,
        "digest": record.digest,
        "content_digest": record.content_digest,
        "plan": record.plan,
        "run_id": str(record.run_id) if record.run_id else None,
        "task_id": record.task_id,
        "graph_hash": record.graph_hash,
        "labels": dict(record.labels),
        "sensitive": record.sensitive,
        "key_id": record.key_id,
        "created": record.created.isoformat(),
        "expires": record.expires.isoformat() if record.expires else None,
    }


def _labels(values: list[str]) -> dict[str, str]:
    from plan2flow.memory.artifact_query import parse_label

    return dict(parse_label(value) for value in values)


@artifacts_app.command("list")
def artifacts_list(
    plan: Annotated[str | None, typer.Option("--plan", help="Of this plan.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Of this run (its id).")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Made by this task.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Of this kind (`file`, ...).")] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="With this label, KEY=VALUE (repeat: all of them)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Whose name starts so.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Created from this time on: ISO 8601, or ago: 15m, 2h, 1d."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Artifacts per page.")] = 50,
    after: Annotated[
        str | None, typer.Option("--after", help="The next page: the cursor a page printed.")
    ] = None,
    format: FormatOption = ListFormat.text,
    tenant: TenantOption = None,
) -> None:
    """List artifacts, newest first, one page at a time."""
    from plan2flow.memory.artifact_query import ArtifactQuery, Cursor

    try:
        start = parse_since(since) if since is not None else None
    except ValueError as error:
        _stop(f"--since {since!r}: {error}")
    try:
        run_id = uuid.UUID(run) if run is not None else None
    except ValueError:
        _stop(f"--run {run!r} is not a run id (a UUID)")
    query = ArtifactQuery(
        plan=plan,
        run_id=run_id,
        task_id=task,
        kind=kind,
        labels=_labels(label or []),
        name_prefix=name,
        since=start,
        limit=limit,
        after=Cursor.decode(after) if after else None,
    )
    with _store(tenant) as store:
        page = store.search(query)
    out, err = consoles()
    cursor = page.next.encode() if page.next else None
    if format is ListFormat.json:
        rows = [record_fields(record) for record in page.records]
        say(out, json.dumps({"artifacts": rows, "next": cursor}, indent=2))
        return
    table = Table(
        Column("id", no_wrap=True),
        Column("created", no_wrap=True),
        Column("size", justify="right", no_wrap=True),
        Column("kind", no_wrap=True),
        Column("name", overflow="fold"),
        Column("plan/task", overflow="fold"),
        box=None,
    )
    for record in page.records:
        producer = "/".join(part for part in (record.plan, record.task_id) if part)
        table.add_row(
            str(record.id),
            _moment(record.created),
            _size(record.size),
            record.kind,
            record.name,
            producer,
        )
    if page.records:
        _wide(out).print(table)
    else:
        say(err, "no artifacts")
    if cursor:
        say(err, f"more: --after {cursor}")


@artifacts_app.command("show")
def artifacts_show(
    ref: IdArgument, format: FormatOption = ListFormat.text, tenant: TenantOption = None
) -> None:
    """Show an artifact's metadata."""
    with _store(tenant) as store:
        record = store.show(ref)
    fields = record_fields(record)
    out = consoles()[0]
    if format is ListFormat.json:
        say(out, json.dumps(fields, indent=2))
        return
    table = Table(Column(no_wrap=True), Column(overflow="fold"), box=None, show_header=False)
    for key, value in fields.items():
        if key == "labels":
            value = ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
        table.add_row(key, "" if value is None else str(value))
    _wide(out).print(table)


def _default_destination(record: ArtifactRecord) -> Path:
    base = PurePosixPath(record.name).name
    if base in ("", ".", ".."):
        _stop(f"artifact {record.id} has no usable file name: give -o PATH")
    return Path(base)


@artifacts_app.command("get")
def artifacts_get(
    ref: IdArgument,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            parser=nonempty_path("--output"),
            help="Where to write it (default: its name, here). A directory artifact goes to a "
            "new or empty directory.",
            show_default=False,
        ),
    ] = None,
    tenant: TenantOption = None,
) -> None:
    """Write an artifact to a file (or a directory artifact to a directory), verified."""
    with _store(tenant) as store:
        record = store.show(ref)
        target = output if output is not None else _default_destination(record)
        store.materialize(record, target)
    say(consoles()[1], f"wrote {record.kind} {record.id} ({_size(record.size)}) to {target}")


@artifacts_app.command("rm")
def artifacts_rm(ref: IdArgument, tenant: TenantOption = None) -> None:
    """Delete an artifact (its blob goes once nothing references it, after the grace period)."""
    with _store(tenant) as store:
        record = store.delete(ref)
    say(consoles()[0], f"deleted artifact {record.id} ({record.name})")


def _duration(option: str, value: str | None) -> dt.timedelta | None:
    from plan2flow.memory.artifact_meta import parse_duration
    from plan2flow.memory.errors import MemoryStoreError

    if value is None:
        return None
    try:
        return parse_duration(value)
    except MemoryStoreError as error:
        _stop(f"{option}: {error}")


def _gc_summary(report: GcReport) -> list[str]:
    verb = "would delete" if report.dry_run else "deleted"
    lines = [
        f"{verb} {len(report.expired)} expired artifacts, {len(report.retired)} by retention",
        f"{verb} {len(report.blobs)} unreferenced blobs ({_size(report.freed_bytes)})",
    ]
    if not report.dry_run:
        lines.append(f"removed {len(report.temporaries)} stale temporaries")
    return lines


@artifacts_app.command("gc")
def artifacts_gc(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", help="Delete artifacts created longer ago than this: 30d, 12h, 2w."
        ),
    ] = None,
    keep_last: Annotated[
        int | None,
        typer.Option(
            "--keep-last",
            min=0,
            help="Keep the newest N of every plan + task + name, whatever their age.",
        ),
    ] = None,
    grace: Annotated[
        str,
        typer.Option("--grace", help="Keep unreferenced blobs touched within this time."),
    ] = "1h",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")
    ] = False,
    format: FormatOption = ListFormat.text,
    tenant: TenantOption = None,
) -> None:
    """Delete expired artifacts (and, with --older-than/--keep-last, old ones), then the blobs
    no artifact references and nobody touched for the grace period."""
    age = _duration("--older-than", older_than)
    kept = _duration("--grace", grace)
    assert kept is not None
    with _store(tenant) as store:
        report = store.gc(older_than=age, keep_last=keep_last, grace=kept, dry_run=dry_run)
    out = consoles()[0]
    if format is ListFormat.json:
        summary = {
            "dry_run": report.dry_run,
            "expired": [str(record.id) for record in report.expired],
            "retired": [str(record.id) for record in report.retired],
            "blobs": [blob.digest for blob in report.blobs],
            "freed_bytes": report.freed_bytes,
            "temporaries": list(report.temporaries),
        }
        say(out, json.dumps(summary, indent=2))
        return
    for line in _gc_summary(report):
        say(out, line)
