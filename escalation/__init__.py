"""The escalation chain: when a code-producing task's result is not good enough, the local
agent, then a model behind an OpenAI-compatible endpoint with competing variants scored on real
signals, then a person (the flow run pauses with a form: :mod:`.human`); everything sent out
passes the redaction gateway, and every escalation is recorded in project memory.

::

    from plan2flow.escalation import CodeTask, escalate, policy_from_record

    result = escalate(CodeTask(task_id, spec, render), policy_from_record(record), workdir=dir)

It imports neither Prefect nor the parts above it (agents, flows); see docs/escalation.md.
"""

from __future__ import annotations

from plan2flow.escalation.chain import ChainResult, HumanStep, Surroundings, run_chain
from plan2flow.escalation.errors import (
    BudgetExceeded,
    EscalationError,
    EscalationFailed,
    HostDenied,
    HumanTierReached,
    JournalError,
    ModelCallFailed,
    RecordNotFound,
    RedactionFailed,
)
from plan2flow.escalation.gateway import Gateway
from plan2flow.escalation.human import (
    DECISIONS,
    HumanAnswer,
    HumanDesk,
    HumanQuestion,
    current_desk,
    use_desk,
)
from plan2flow.escalation.journal import EscalationRecord, VariantRecord, find, records, store
from plan2flow.escalation.remote import ChatClient, Completion
from plan2flow.escalation.run import escalate, policy_from_record
from plan2flow.escalation.stats import TierModelStats, tier_model_stats
from plan2flow.escalation.variants import CodeTask, Variant

__all__ = [
    "DECISIONS",
    "BudgetExceeded",
    "ChainResult",
    "ChatClient",
    "CodeTask",
    "Completion",
    "EscalationError",
    "EscalationFailed",
    "EscalationRecord",
    "Gateway",
    "HostDenied",
    "HumanAnswer",
    "HumanDesk",
    "HumanQuestion",
    "HumanStep",
    "HumanTierReached",
    "JournalError",
    "ModelCallFailed",
    "RecordNotFound",
    "RedactionFailed",
    "Surroundings",
    "TierModelStats",
    "Variant",
    "VariantRecord",
    "current_desk",
    "escalate",
    "find",
    "policy_from_record",
    "records",
    "run_chain",
    "store",
    "tier_model_stats",
    "use_desk",
]
