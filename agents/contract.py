"""The versioned I/O contract every agent speaks: one request in, one result out.

Agents are Prefect Blocks (their configuration lives on the Prefect server, editable in the UI);
what they are asked to do and what they report back is this contract, the same for all of them,
so a model-backed agent can replace a local one without the runtime noticing.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CONTRACT_VERSION: Literal["plan2flow.agent/v1"] = "plan2flow.agent/v1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentRequest(_Model):
    """What a task asks of its agent."""

    version: Literal["plan2flow.agent/v1"] = CONTRACT_VERSION
    task_id: str
    task_type: str
    params: dict[str, Any] = {}
    inputs: dict[str, str] = {}
    """Local input name → path of the upstream artifact (file or directory)."""
    outputs: dict[str, str] = {}
    """Declared output name → path the agent must create."""
    workspace: str
    """A directory the agent may use freely; it belongs to this task in this run."""
    correlation_id: str = ""
    """The flow run id, for logs and events."""
    escalation: dict[str, Any] | None = None
    """The task's escalation policy as its TaskGraph records it; None when it has none."""
    plan: str = ""
    """The plan's name, for the escalation journal and events."""
    checks: list[dict[str, Any]] = []
    """The steps that check this task's output after it (``{"type": "validate" | "test",
    "params": ...}``): a code generator whose plan declares escalation runs them first and
    feeds their failures to the chain."""


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AgentResult(_Model):
    """What an agent reports back."""

    version: Literal["plan2flow.agent/v1"] = CONTRACT_VERSION
    outcome: Outcome
    outputs: dict[str, str] = {}
    """Output name → path written."""
    metrics: dict[str, float] = {}
    findings: list[str] = []
    """What went wrong (or is worth a look), one line each."""
    log_excerpt: str = ""
    quality: float = Field(default=1.0, ge=0.0, le=1.0)
    """The agent's confidence in its output, 0 to 1 (the escalation chain reads it)."""


class Health(_Model):
    ok: bool
    detail: str = ""
    latency_seconds: float = 0.0
