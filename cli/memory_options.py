"""What the commands of project memory share: the `--tenant` option, resolving it, and the
configured metadata database (`audit`, `artifacts`, `keys`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from plan2flow.memory.db.engine import Database

TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        "-t",
        help="The tenant to act for (default: PLAN2FLOW_TENANT, or `default`).",
        show_default=False,
    ),
]


def resolve_tenant(value: str | None) -> str:
    """`--tenant` when given (checked: a DNS label), else the settings' tenant."""
    from plan2flow.memory.settings import check_tenant, memory_settings

    return check_tenant(value) if value is not None else memory_settings().tenant


@contextlib.contextmanager
def memory_database() -> Iterator[Database]:
    """The metadata database of the environment, migrated when it is the SQLite default."""
    from plan2flow.memory.db.engine import configured_database

    with configured_database() as database:
        yield database
