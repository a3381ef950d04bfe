"""Per-tenant outbound host allow-lists: the hosts a tenant's escalations may send prompts to.

The rule the escalation chain applies (docs/escalation.md): a remote tier's host must be in the
plan's ``allowed_hosts``; when the tenant **has a list**, it must be in that list too. A tenant
has no list until a host is allowed for it (its escalations call what their plans allow); denying
its last host leaves an empty list, which allows nothing (never the plans' alone again); only
``clear`` removes the list. Deny by default on both levels.

The list is a column of the ``tenants`` table, changed through the migration role
(``PLAN2FLOW_DATABASE_ADMIN_URL``) like the tenants themselves: the application role may only
read that table, so a worker cannot widen its own list. Every change is an audit entry of the
tenant, written in the same transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import re

from sqlmodel import select

from . import audit
from .db.engine import Database, TenantSession, configured_database
from .db.models import Tenant
from .errors import TenantError
from .settings import MemorySettings, check_tenant, memory_settings
from .tenants import admin_database

HOST_CODE = "P2F820"
"""A host that is not a host name or an IP address."""
NO_LIST_CODE = "P2F821"
"""A host denied for a tenant that has no list (nothing to take it out of)."""
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


@dataclasses.dataclass(frozen=True)
class TenantHosts:
    """A tenant's list as the chain applies it: only the allowed hosts count."""

    tenant: str
    allowed: frozenset[str]

    def allows(self, host: str) -> bool:
        return _plain(host) in self.allowed


def _plain(host: str) -> str:
    """A host as lists keep it: lowercase, an IP address in its canonical form."""
    bare = host.strip().lower()
    bare = bare[1:-1] if bare.startswith("[") and bare.endswith("]") else bare
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare


def normalize_host(text: str) -> str:
    """``text`` as the chain compares hosts: lowercase, IPv6 without brackets; TenantError
    (P2F820) when it is not a host name or an IP address.

    >>> normalize_host(" API.Example.com "), normalize_host("[::1]")
    ('api.example.com', '::1')
    """
    host = _plain(text)
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))
    if len(host) <= 253 and _NAME.match(host):
        return host
    raise TenantError(
        f"{HOST_CODE} {text!r} is not a host: give a host name or an IP address, without scheme, "
        "port or path, such as 'api.openai.com' (what a remote tier's base_url names)"
    )


def _locked(session: TenantSession, tenant: str) -> Tenant:
    """``tenant``'s row, locked until the transaction ends (PostgreSQL: two changes at once
    cannot lose one; SQLite's write transactions are serial already)."""
    row = session.exec(select(Tenant).where(Tenant.name == tenant).with_for_update()).first()
    if row is None:  # the session checked it exists; removed since
        raise TenantError(f"no tenant {tenant!r}: create it with `plan2flow tenants create`")
    return row


def _change(tenant: str, host: str, *, allow: bool, settings: MemorySettings | None) -> list[str]:
    check_tenant(tenant)
    plain = normalize_host(host)
    with (
        admin_database(settings or memory_settings()) as database,
        database.session(tenant) as session,
    ):
        row = _locked(session, tenant)
        if row.allowed_hosts is None and not allow:
            raise TenantError(
                f"{NO_LIST_CODE} tenant {tenant!r} has no host list: its escalations call the "
                f"hosts their plans allow. Start one with `plan2flow tenants hosts allow "
                f"--tenant {tenant} HOST` (every host not allowed there is denied)"
            )
        hosts = set(row.allowed_hosts or ())
        hosts = hosts | {plain} if allow else hosts - {plain}
        row.allowed_hosts = sorted(hosts)
        session.add(row)
        action = "tenant.host_allowed" if allow else "tenant.host_denied"
        audit.append(session, tenant, audit.actor(), action, plain, {"hosts": row.allowed_hosts})
        return list(row.allowed_hosts)


def allow_host(tenant: str, host: str, settings: MemorySettings | None = None) -> list[str]:
    """Add ``host`` to ``tenant``'s list (starting the list); the list after."""
    return _change(tenant, host, allow=True, settings=settings)


def deny_host(tenant: str, host: str, settings: MemorySettings | None = None) -> list[str]:
    """Take ``host`` out of ``tenant``'s list (the list stays, maybe empty); the list after."""
    return _change(tenant, host, allow=False, settings=settings)


def clear_hosts(tenant: str, settings: MemorySettings | None = None) -> bool:
    """Remove ``tenant``'s list: its hosts need only their plans' again. False when it had none."""
    check_tenant(tenant)
    with (
        admin_database(settings or memory_settings()) as database,
        database.session(tenant) as session,
    ):
        row = _locked(session, tenant)
        if row.allowed_hosts is None:
            return False
        before, row.allowed_hosts = row.allowed_hosts, None
        session.add(row)
        audit.append(session, tenant, audit.actor(), "tenant.hosts_cleared", "", {"was": before})
        return True


def tenant_hosts(database: Database, tenant: str) -> TenantHosts | None:
    """``tenant``'s list as the chain applies it; None when the tenant has none."""
    database.require_tenant(tenant)
    with database.connect() as connection:
        found = connection.execute(
            select(Tenant.allowed_hosts).where(Tenant.name == tenant)
        ).scalar_one_or_none()
    if found is None:
        return None
    # Read back as data: anything but a list of strings allows nothing (fail closed).
    hosts = found if isinstance(found, list) else []
    return TenantHosts(tenant, frozenset(_plain(host) for host in hosts if isinstance(host, str)))


def list_hosts(tenant: str, settings: MemorySettings | None = None) -> TenantHosts | None:
    """``tenant``'s list (through the application's own URL); None when it has none."""
    with configured_database(settings or memory_settings()) as database:
        return tenant_hosts(database, tenant)


__all__ = [
    "TenantHosts",
    "allow_host",
    "clear_hosts",
    "deny_host",
    "list_hosts",
    "normalize_host",
    "tenant_hosts",
]
