"""`plan2flow tenants hosts allow|deny|list|clear`: a tenant's outbound host allow-list, which
the escalation chain applies on top of each plan's ``allowed_hosts`` (see docs/escalation.md).

Changes connect as the migration role on PostgreSQL (``PLAN2FLOW_DATABASE_ADMIN_URL``), like
`tenants create`; `list` reads through the application's URL. Each change is an audit entry of
the tenant. Exit statuses: 0 done; 2 a host or tenant that is not one, or a tenant without a
list to deny from; 3 the database cannot be reached; 4 its schema is behind.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .app import consoles, say
from .db_commands import ListFormat, tenants_app
from .memory_options import TenantOption, resolve_tenant

hosts_app = typer.Typer(
    help="A tenant's outbound host allow-list for escalations (see docs/escalation.md).",
    no_args_is_help=True,
)
tenants_app.add_typer(hosts_app, name="hosts")

HostArgument = Annotated[
    str, typer.Argument(help="A host name or IP address, without scheme or port.")
]


def _shown(hosts: list[str]) -> str:
    return ", ".join(hosts) if hosts else "nothing (every host is denied)"


@hosts_app.command("allow")
def hosts_allow(host: HostArgument, tenant: TenantOption = None) -> None:
    """Allow HOST for the tenant's escalations (starts its list: every other host is denied)."""
    from plan2flow.memory.tenant_hosts import allow_host

    name = resolve_tenant(tenant)
    hosts = allow_host(name, host)
    say(consoles()[0], f"tenant {name} allows {_shown(hosts)}")


@hosts_app.command("deny")
def hosts_deny(host: HostArgument, tenant: TenantOption = None) -> None:
    """Take HOST out of the tenant's list (an empty list allows nothing)."""
    from plan2flow.memory.tenant_hosts import deny_host

    name = resolve_tenant(tenant)
    hosts = deny_host(name, host)
    say(consoles()[0], f"tenant {name} allows {_shown(hosts)}")


@hosts_app.command("clear")
def hosts_clear(tenant: TenantOption = None) -> None:
    """Remove the tenant's list: its escalations call what their plans allow again."""
    from plan2flow.memory.tenant_hosts import clear_hosts

    name = resolve_tenant(tenant)
    if clear_hosts(name):
        say(consoles()[0], f"tenant {name} has no host list now: the plans' allowed_hosts decide")
    else:
        say(consoles()[0], f"tenant {name} had no host list")


@hosts_app.command("list")
def hosts_list(
    tenant: TenantOption = None,
    format: Annotated[
        ListFormat,
        typer.Option("--format", "-f", help="`text` for people, `json` for tools."),
    ] = ListFormat.text,
) -> None:
    """Print the tenant's list, or say it has none."""
    from plan2flow.memory.tenant_hosts import list_hosts

    name = resolve_tenant(tenant)
    found = list_hosts(name)
    hosts = None if found is None else sorted(found.allowed)
    out = consoles()[0]
    if format is ListFormat.json:
        say(out, json.dumps({"tenant": name, "hosts": hosts}, indent=2))
    elif hosts is None:
        say(out, f"tenant {name} has no host list: the plans' allowed_hosts decide")
    elif not hosts:
        say(out, f"tenant {name} allows no host: every remote tier is denied")
    else:
        for host in hosts:
            say(out, host)
