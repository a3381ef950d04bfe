"""`plan2flow keys new|rotate`: master keys of encryption at rest (see docs/memory.md).

A rotation: `keys new` appends a key to ``PLAN2FLOW_KEYS_FILE`` (new values are wrapped with
it), `keys rotate` re-wraps every stored data key under it, then the old key may leave the file.
Exit statuses: 0 done; 2 usage or a tenant problem; 3 the database cannot be reached; 4 the
schema is behind; 6 no keys file, a malformed one, or a data key under a key no longer there.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app, consoles, say
from .memory_options import resolve_tenant

keys_app = typer.Typer(
    help="Master keys of encryption at rest: add one, rotate data keys onto it "
    "(see docs/memory.md).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new(
    key_id: Annotated[
        str | None,
        typer.Option("--key-id", help="Its id (default: k<UTC time>, e.g. k20261130T090000Z)."),
    ] = None,
) -> None:
    """Append a fresh master key to PLAN2FLOW_KEYS_FILE; it becomes the current key."""
    from plan2flow.memory.keys import new_key
    from plan2flow.memory.settings import memory_settings

    settings = memory_settings()
    made = new_key(settings, key_id)
    say(consoles()[0], f"added master key {made} to {settings.keys_file} (current from now on)")


@keys_app.command("rotate")
def keys_rotate(
    tenant: Annotated[
        list[str] | None,
        typer.Option(
            "--tenant", "-t", help="Only this tenant (repeat for more; default: every tenant)."
        ),
    ] = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Rows re-wrapped per transaction.")
    ] = 500,
) -> None:
    """Re-wrap every data key (artifacts, run parameters) under the current master key,
    tenant by tenant, without touching the encrypted payloads."""
    from plan2flow.memory.keys import rotate_keys

    names = [resolve_tenant(name) for name in tenant] if tenant else None
    report = rotate_keys(tenants=names, batch=batch)
    out = consoles()[0]
    for done in report.tenants:
        say(
            out,
            f"tenant {done.tenant}: {done.artifacts} artifact keys and {done.runs} run "
            f"parameter keys re-wrapped under {report.key_id}",
        )
