"""The base of every agent Block: capabilities, health, and execution of the contract."""

from __future__ import annotations

import abc
import time
from typing import Any, ClassVar

from prefect.blocks.core import Block
from pydantic import BaseModel

from .contract import AgentRequest, AgentResult, Health


class AgentBlock(Block, abc.ABC):
    """An agent: a Prefect Block type whose documents configure it and which executes tasks.

    Subclasses set a permanent ``_block_type_slug`` (``plan2flow-<name>``: a server-side key,
    never renamed; never inherited by accident), ``task_types`` and ``params_model``. Adding
    fields is fine; reordering them changes the block schema's checksum.
    """

    _block_type_slug = "plan2flow-agent"
    _description = "A plan2flow agent."
    task_types: ClassVar[tuple[str, ...]] = ()
    params_model: ClassVar[type[BaseModel] | None] = None
    required_inputs: ClassVar[tuple[str, ...]] = ()
    """Local input names a task must wire for this agent (components and delivery do)."""
    required_outputs: ClassVar[tuple[str, ...]] = ()
    """Output names a task must declare for this agent."""

    def missing(self, inputs: set[str], outputs: set[str]) -> str | None:
        """What a task lacks for this agent, in words, or None."""
        lacks = [f"input '{n}'" for n in self.required_inputs if n not in inputs]
        lacks += [f"output '{n}'" for n in self.required_outputs if n not in outputs]
        return ", ".join(lacks) or None

    def capabilities(self) -> dict[str, Any]:
        """Task type → the JSON Schema of the params this agent takes for it."""
        schema = self.params_model.model_json_schema() if self.params_model else {}
        return {task_type: schema for task_type in self.task_types}

    def health(self) -> Health:
        """Whether the agent can work now (tools present, services reachable)."""
        started = time.perf_counter()
        problem = self.check()
        return Health(
            ok=problem is None,
            detail=problem or "ok",
            latency_seconds=round(time.perf_counter() - started, 6),
        )

    def check(self) -> str | None:
        """What keeps this agent from working, or None. Subclasses add their checks."""
        return None

    @abc.abstractmethod
    def execute(self, request: AgentRequest) -> AgentResult:
        """Do the task's work; never raise for a failure of the work itself: report it."""
