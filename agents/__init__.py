"""plan2flow's agents: Prefect Block types that execute the software-factory task types.

The compiler refers to them only by block type slug (``plan2flow.compiler.decompose.agents``);
:data:`AGENTS` maps each slug to its class, so the runtime can load a block document by name.
"""

from __future__ import annotations

from .assembler import AssemblerAgent
from .base import AgentBlock
from .code_generator import CodeGeneratorAgent
from .contract import CONTRACT_VERSION, AgentRequest, AgentResult, Health, Outcome
from .deployer import DeployerAgent
from .packager import PackagerAgent
from .tester import TesterAgent
from .validator import ValidatorAgent

AGENT_CLASSES: tuple[type[AgentBlock], ...] = (
    CodeGeneratorAgent,
    ValidatorAgent,
    TesterAgent,
    AssemblerAgent,
    PackagerAgent,
    DeployerAgent,
)
AGENTS: dict[str, type[AgentBlock]] = {cls.get_block_type_slug(): cls for cls in AGENT_CLASSES}

__all__ = [
    "AGENTS",
    "AGENT_CLASSES",
    "CONTRACT_VERSION",
    "AgentBlock",
    "AgentRequest",
    "AgentResult",
    "AssemblerAgent",
    "CodeGeneratorAgent",
    "DeployerAgent",
    "Health",
    "Outcome",
    "PackagerAgent",
    "TesterAgent",
    "ValidatorAgent",
]
