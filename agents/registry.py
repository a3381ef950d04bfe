"""Registering agent Block types with the Prefect server, listing, removing, checking health.

Registration is idempotent: a type whose schema the server already has, and a `default`
document that already exists, are left alone, so running it twice changes nothing.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, cast

from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from plan2flow.compiler.decompose.agents import DEFAULT_DOCUMENT
from plan2flow.events import Event, default_tenant, new_event, process_bus

from . import AGENTS
from .base import AgentBlock


@dataclasses.dataclass(frozen=True)
class AgentStatus:
    slug: str
    task_types: tuple[str, ...]
    documents: tuple[str, ...]
    healthy: bool
    detail: str
    latency_seconds: float
    checked_at: float


def _documents(client: Any, slug: str) -> list[str]:
    """The names of an agent's documents; none when its type is not registered (the server
    answers that with a bare HTTP 404, not Prefect's ObjectNotFound)."""
    try:
        documents = client.read_block_documents_by_type(block_type_slug=slug)
    except ObjectNotFound:
        return []
    except PrefectHTTPStatusError as error:
        if error.response.status_code == 404:
            return []
        raise
    return sorted(d.name for d in documents if d.name)


def register_all() -> list[tuple[str, str]]:
    """Register every agent type and its `default` document; what changed, per slug."""
    changes = []
    with get_client(sync_client=True) as client:
        for slug, cls in sorted(AGENTS.items()):
            try:
                client.read_block_schema_by_checksum(cls._calculate_schema_checksum())
                known = DEFAULT_DOCUMENT in _documents(client, slug)
            except ObjectNotFound:
                known = False
            if known:
                changes.append((slug, "unchanged"))
                continue
            cls.register_type_and_schema()
            if DEFAULT_DOCUMENT not in _documents(client, slug):
                cls().save(DEFAULT_DOCUMENT)
            changes.append((slug, "registered"))
    return changes


def resolve(name: str) -> type[AgentBlock]:
    """An agent class by slug (`plan2flow-tester`) or short name (`tester`)."""
    for slug, cls in AGENTS.items():
        if name in {slug, slug.removeprefix("plan2flow-")}:
            return cls
    known = ", ".join(sorted(s.removeprefix("plan2flow-") for s in AGENTS))
    raise KeyError(f"no agent named {name!r} (agents: {known})")


def unregister(name: str) -> str:
    """Delete an agent's block type, and with it its documents, from the server."""
    slug = resolve(name).get_block_type_slug()
    with get_client(sync_client=True) as client:
        try:
            block_type = client.read_block_type_by_slug(slug)
        except ObjectNotFound:
            return f"{slug}: not registered"
        for document in client.read_block_documents_by_type(block_type_slug=slug):
            client.delete_block_document(document.id)
        client.delete_block_type(block_type.id)
    return f"{slug}: unregistered"


def statuses() -> list[AgentStatus]:
    """Every agent: its task types, documents on the server, and the health of `default`."""
    found = []
    with get_client(sync_client=True) as client:
        for slug, cls in sorted(AGENTS.items()):
            documents = _documents(client, slug)
            agent = cls.load(DEFAULT_DOCUMENT) if DEFAULT_DOCUMENT in documents else cls()
            health = cast(AgentBlock, agent).health()  # `load` is sync here
            found.append(
                AgentStatus(
                    slug=slug,
                    task_types=cls.task_types,
                    documents=tuple(documents),
                    healthy=health.ok,
                    detail=health.detail,
                    latency_seconds=health.latency_seconds,
                    checked_at=time.time(),
                )
            )
    return found


HEALTH_PLAN = "agents"
"""The plan name of health events on the event bus: a probe belongs to no plan."""


def health_events(items: list[AgentStatus]) -> list[Event]:
    """The `plan2flow.agent.health` events of the event bus for `items`, one per agent."""
    return [
        new_event(
            "plan2flow.agent.health",
            tenant=default_tenant(),
            plan=HEALTH_PLAN,
            data={
                "agent": item.slug,
                "healthy": item.healthy,
                "detail": item.detail,
                "latency_seconds": max(item.latency_seconds, 0.0),
            },
        )
        for item in items
    ]


def publish_health(items: list[AgentStatus]) -> None:
    """One `plan2flow.agent.health` event per agent, as a Prefect event (automations) and on
    plan2flow's event bus (``plan2flow metrics serve`` exports the result and the latency)."""
    bus = process_bus()
    for event in health_events(items):
        bus.publish(event)
    for item in items:
        emit_event(
            event="plan2flow.agent.health",
            resource={
                "prefect.resource.id": f"plan2flow.agent.{item.slug}",
                "prefect.resource.name": item.slug,
            },
            payload={
                "healthy": item.healthy,
                "detail": item.detail,
                "latency_seconds": item.latency_seconds,
            },
        )
