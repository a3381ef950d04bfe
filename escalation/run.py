"""One escalation from start to end: the chain, its record in project memory and its events."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plan2flow.compiler.spec.escalation import EscalationPolicy
from plan2flow.events import EventBus, RunContext, from_env
from plan2flow.memory.db.engine import Database, configured_database
from plan2flow.memory.errors import MemoryStoreError
from plan2flow.memory.settings import memory_settings
from plan2flow.memory.tenant_hosts import TenantHosts, tenant_hosts

from .chain import ChainResult, HumanStep, Surroundings, run_chain
from .errors import EscalationFailed, HumanTierReached, JournalError
from .events import publish
from .human import HumanDesk, current_desk
from .journal import EscalationRecord, make_record, store
from .remote import Sleep
from .variants import CodeTask, Variant


def policy_from_record(record: Mapping[str, Any]) -> EscalationPolicy:
    """The policy a TaskGraph records for a task (every default applied)."""
    return EscalationPolicy.model_validate(dict(record))


def escalate(
    task: CodeTask,
    policy: EscalationPolicy,
    *,
    workdir: Path,
    local: Variant | None = None,
    environ: Mapping[str, str] | None = None,
    bus: EventBus | None = None,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    database: Database | None = None,
    desk: HumanDesk | None = None,
) -> ChainResult:
    """Run the chain for ``task``, record it in project memory (``database``, default: the
    environment's) and publish its events; return the result when a variant was kept, else
    raise :class:`EscalationFailed` (:class:`HumanTierReached` when it ended at the human
    tier). ``desk`` asks a person at the human tier (default: the flow run's, if any)."""
    env = os.environ if environ is None else environ
    events_bus = from_env(env) if bus is None else bus
    tenant = memory_settings(env).tenant
    run = RunContext(
        tenant=tenant,
        plan=task.plan or "unknown",
        graphhash=None,
        flowrunid=task.flow_run_id or "local",
    )

    def on_event(name: str, data: dict[str, Any]) -> None:
        publish(events_bus, run, task.task_id, name, data)

    around = Surroundings(
        workdir,
        env,
        sleep,
        rng or random.Random(),
        on_event,
        desk or current_desk(),
        _tenant_hosts(policy, tenant, database, env),
    )
    result = run_chain(task, policy, around, local=local)
    record = make_record(
        result,
        tenant=tenant,
        plan=task.plan,
        flow_run_id=task.flow_run_id,
        now=dt.datetime.now(dt.UTC),
    )
    _record(record, database, env, result.human)
    on_event(
        "finished",
        {
            "record_id": record.id,
            "outcome": record.outcome,
            "tier_reached": record.tier_reached,
            "reason": record.reason,
            "winner": record.winner,
            "score": record.winner_score,
            "cost_usd": record.cost_usd,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "redactions": record.redactions,
            "human": [dataclasses.asdict(step) for step in result.human],
        },
    )
    if result.outcome != "kept":
        message = (
            f"task {task.task_id!r}: escalation reached the {result.tier_reached} tier: "
            f"{result.reason} (plan2flow escalations show {record.short_id})"
        )
        failure = HumanTierReached if result.tier_reached == "human" else EscalationFailed
        raise failure(message, tier_reached=result.tier_reached, record_id=record.id)
    return result


def _tenant_hosts(
    policy: EscalationPolicy, tenant: str, database: Database | None, env: Mapping[str, str]
) -> TenantHosts | None:
    """The tenant's outbound host list, read before anything is sent (only a remote tier needs
    it); one that cannot be read fails the escalation: no prompt leaves unchecked."""
    if not any(tier.remote is not None for tier in policy.tiers):
        return None
    try:
        if database is not None:
            return tenant_hosts(database, tenant)
        with configured_database(memory_settings(env)) as opened:
            return tenant_hosts(opened, tenant)
    except MemoryStoreError as error:
        raise JournalError(
            f"cannot read the outbound host list of tenant {tenant!r}, so nothing is sent: {error}"
        ) from None


def _record(
    record: EscalationRecord,
    database: Database | None,
    env: Mapping[str, str],
    human: list[HumanStep],
) -> None:
    """Store ``record`` in ``database``, or in the environment's own, opened for this once; the
    audit entry is by the person whose answer ended the escalation, when one did."""
    who = next((step.respondent for step in reversed(human) if step.respondent), None)
    steps = [dataclasses.asdict(step) for step in human]
    if database is not None:
        store(database, record, who=who, human=steps)
        return
    try:
        opened = configured_database(memory_settings(env))
    except MemoryStoreError as error:
        raise JournalError(f"cannot record escalation {record.short_id}: {error}") from None
    with opened:
        store(opened, record, who=who, human=steps)
