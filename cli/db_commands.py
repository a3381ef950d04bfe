"""`plan2flow db ...` and `plan2flow tenants ...`: the metadata database's migrations and its
tenants (see docs/memory.md).

On PostgreSQL, `db` and `tenants create` connect as the migration role
(``PLAN2FLOW_DATABASE_ADMIN_URL``, default ``PLAN2FLOW_DATABASE_URL``); `db upgrade` grants the
application role (the user of ``PLAN2FLOW_DATABASE_URL``) what it may do. Errors of project
memory end the command through ``main()`` with their own status: 2 usage or a tenant problem,
3 the database cannot be reached, 4 the schema is behind.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from .app import app, consoles, say

db_app = typer.Typer(
    help="Migrate the metadata database of project memory (see docs/memory.md).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
tenants_app = typer.Typer(
    help="Create and list tenants (see docs/memory.md).",
    no_args_is_help=True,
)
app.add_typer(tenants_app, name="tenants")


class ListFormat(StrEnum):
    text = "text"
    json = "json"


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[
        str, typer.Option("--revision", "-r", help="The revision to migrate to.")
    ] = "head",
) -> None:
    """Migrate the database forward (as the migration role on PostgreSQL)."""
    from plan2flow.memory.db import migrate
    from plan2flow.memory.db.engine import redact
    from plan2flow.memory.settings import memory_settings

    settings = memory_settings()
    before = migrate.current(settings.admin_url)
    migrate.upgrade(settings.admin_url, revision, app_role=migrate.application_role(settings))
    after = migrate.current(settings.admin_url)
    where = redact(settings.admin_url)
    if before == after:
        say(consoles()[0], f"{where} is at {after or 'base'} already")
    else:
        say(consoles()[0], f"{where}: upgraded from {before or 'base'} to {after}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="The revision to go back to (`base`: drop every table).")
    ],
) -> None:
    """Migrate the database back to REVISION (as the migration role on PostgreSQL)."""
    from plan2flow.memory.db import migrate
    from plan2flow.memory.db.engine import redact
    from plan2flow.memory.settings import memory_settings

    settings = memory_settings()
    before = migrate.current(settings.admin_url)
    migrate.downgrade(settings.admin_url, revision)
    after = migrate.current(settings.admin_url)
    say(
        consoles()[0],
        f"{redact(settings.admin_url)}: downgraded from {before or 'base'} to {after or 'base'}",
    )


@db_app.command("current")
def db_current() -> None:
    """Print the revision the database is at, and whether it is the newest."""
    from plan2flow.memory.db import migrate
    from plan2flow.memory.settings import memory_settings

    found = migrate.current(memory_settings().admin_url)
    if found is None:
        say(consoles()[0], "base (not migrated: run `plan2flow db upgrade`)")
    elif found == migrate.head():
        say(consoles()[0], f"{found} (head)")
    else:
        say(consoles()[0], f"{found} (behind {migrate.head()}: run `plan2flow db upgrade`)")


@db_app.command("history")
def db_history() -> None:
    """List the migrations, oldest first."""
    from plan2flow.memory.db import migrate

    out = consoles()[0]
    for revision in migrate.history():
        head = " (head)" if revision.is_head else ""
        say(out, f"{revision.id}{head}  {revision.message}")


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="The tenant: a DNS label (`acme`, `team-7`).")],
) -> None:
    """Create a tenant (as the migration role on PostgreSQL)."""
    from plan2flow.memory.tenants import create_tenant

    tenant = create_tenant(name)
    say(consoles()[0], f"created tenant {tenant.name}")


@tenants_app.command("list")
def tenants_list(
    format: Annotated[
        ListFormat,
        typer.Option("--format", "-f", help="`text` for people, `json` for tools."),
    ] = ListFormat.text,
) -> None:
    """List the tenants."""
    from plan2flow.memory.tenants import list_tenants

    tenants = list_tenants()
    out = consoles()[0]
    if format is ListFormat.json:
        rows = [{"name": t.name, "created": t.created.isoformat()} for t in tenants]
        say(out, json.dumps(rows, indent=2))
        return
    for tenant in tenants:
        say(out, f"{tenant.name}  {tenant.created.isoformat(timespec='seconds')}")
