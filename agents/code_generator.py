"""CodeGenerator: a component spec → a Python module and its tests, from templates.

Local and deterministic (jinja2 with StrictUndefined, sorted inputs): the same spec always gives
the same files. A function without a body cannot be derived from templates: the agent reports
it with quality 0. When the task's plan declares an escalation policy and the quality is below
its threshold, the escalation chain (:mod:`plan2flow.escalation`) takes over: models write the
missing bodies as competing variants, and the best one, by the tests it passes, is kept.
"""

from __future__ import annotations

import functools
import re
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import jinja2

from plan2flow.compiler.spec.names import module_problem
from plan2flow.compiler.spec.params import GenerateCodeParams

from .base import AgentBlock
from .confine import inside, refusing, require
from .contract import AgentRequest, AgentResult, Outcome


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: resources.files(__package__).joinpath("templates", name).read_text("utf-8")
        ),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _names_used(functions: list[dict[str, Any]], dataclasses: list[dict[str, Any]]) -> list[str]:
    """The module's names that the examples mention: what the tests must import."""
    text = " ".join(
        f"{example['call']} {example['returns']}"
        for function in functions
        for example in function.get("examples", [])
    )
    candidates = [f["name"] for f in functions] + [d["name"] for d in dataclasses]
    return sorted(name for name in candidates if re.search(rf"\b{re.escape(name)}\b", text))


def _imports_used(imports: list[str], functions: list[dict[str, Any]]) -> list[str]:
    """The spec's import lines that the examples need (the tests import nothing else)."""
    text = " ".join(
        f"{example['call']} {example['returns']}"
        for function in functions
        for example in function.get("examples", [])
    )
    used = []
    for line in imports:
        names = line.split(" import ", 1)[-1].replace("import ", "").split(",")
        bound = [name.strip().split(" as ")[-1].split(".")[0] for name in names]
        if any(re.search(rf"\b{re.escape(name)}\b", text) for name in bound if name):
            used.append(line)
    return used


def render_component(spec: dict[str, Any], default_module: str) -> tuple[str, dict[str, str]]:
    """The module name and the files (name → text) of a component spec; raises ValueError for
    a function without a body."""
    module = spec.get("module") or default_module
    functions = []
    for function in spec.get("functions", []):
        body = function.get("body")
        if not body:
            raise ValueError(f"function {function['name']!r} has no body")
        functions.append({**function, "body_lines": textwrap.dedent(body).strip().splitlines()})
    context = {
        "module": module,
        "description": spec.get("description") or f"The {module} component.",
        "imports": list(spec.get("imports", [])),
        "dataclasses": spec.get("dataclasses", []),
        "functions": functions,
        "has_examples": any(f.get("examples") for f in functions),
        "names": _names_used(functions, spec.get("dataclasses", [])),
        "test_imports": _imports_used(list(spec.get("imports", [])), functions),
    }
    environment = _environment()
    return module, {
        f"{module}.py": environment.get_template("module.py.jinja").render(context),
        f"test_{module}.py": environment.get_template("test_module.py.jinja").render(context),
    }


class CodeGeneratorAgent(AgentBlock):
    """Generates a Python module and its tests from a component spec."""

    _block_type_slug = "plan2flow-code-generator"
    _block_type_name = "plan2flow Code Generator"
    _description = (
        "Generates a Python module and its tests from a component spec (local templates)."
    )
    task_types: ClassVar[tuple[str, ...]] = ("generate_code",)
    params_model: ClassVar[Any] = GenerateCodeParams
    required_outputs: ClassVar[tuple[str, ...]] = ("code",)

    generator: str = "templates"
    """Which generator to use; `templates` is local and deterministic."""

    @refusing
    def execute(self, request: AgentRequest) -> AgentResult:
        # Params from a TaskGraph are complete; validating fills in defaults for anything else.
        params = GenerateCodeParams.model_validate(request.params, strict=False)
        spec = params.spec.model_dump() if params.spec else {}
        out = Path(request.outputs["code"])
        out.mkdir(parents=True, exist_ok=True)
        default_module = request.task_id.split(".", 1)[0].replace("-", "_")
        try:
            module, files = render_component(spec, default_module)
        except ValueError as error:
            problem = f"{error}: the template generator cannot derive one"
            if request.escalation is not None:
                return _escalated(request, spec, default_module, out, problem)
            return AgentResult(outcome=Outcome.FAILED, findings=[problem], quality=0.0)
        require(module_problem(module))
        for name, text in sorted(files.items()):
            inside(out, name).write_text(text, encoding="utf-8")
        return AgentResult(
            outcome=Outcome.SUCCEEDED,
            outputs={"code": str(out)},
            metrics={
                "files": float(len(files)),
                "functions": float(len(spec.get("functions", []))),
            },
            log_excerpt=f"wrote {', '.join(sorted(files))} for module {module}",
        )


def _dependencies(request: AgentRequest) -> tuple[tuple[Path, ...], dict[str, str]]:
    """The directories of the modules this one imports (inputs ``dep_<component>``), and their
    code, which the model reads."""
    paths = tuple(
        Path(path) for name, path in sorted(request.inputs.items()) if name.startswith("dep_")
    )
    code = {
        file.stem: file.read_text(encoding="utf-8")
        for directory in paths
        for file in sorted(directory.glob("*.py"))
        if not file.name.startswith("test_")
    }
    return paths, code


def _escalated(
    request: AgentRequest, spec: dict[str, Any], default_module: str, out: Path, problem: str
) -> AgentResult:
    """The template's result was not good enough: run the escalation chain and keep its winner,
    or report the tier it reached and why."""
    from plan2flow.escalation import (
        CodeTask,
        EscalationError,
        Variant,
        escalate,
        policy_from_record,
    )

    module = spec.get("module") or default_module
    require(module_problem(module))
    paths, code = _dependencies(request)
    task = CodeTask(
        task_id=request.task_id,
        spec={**spec, "module": module},
        render=lambda filled: render_component(dict(filled), default_module)[1],
        dependency_paths=paths,
        dependencies=code,
        plan=request.plan,
        flow_run_id=request.correlation_id,
    )
    local = Variant("0-local-1", "local", problem=problem)
    try:
        result = escalate(
            task,
            policy_from_record(request.escalation or {}),
            workdir=Path(request.workspace) / "escalation",
            local=local,
        )
    except EscalationError as error:
        return AgentResult(outcome=Outcome.FAILED, findings=[problem, str(error)], quality=0.0)
    winner = result.winner
    assert winner is not None and winner.files is not None  # a kept result has its files
    for name, text in sorted(winner.files.items()):
        inside(out, name).write_text(text, encoding="utf-8")
    return AgentResult(
        outcome=Outcome.SUCCEEDED,
        outputs={"code": str(out)},
        metrics={
            "files": float(len(winner.files)),
            "functions": float(len(spec.get("functions", []))),
            "escalation_variants": float(len(result.variants)),
            "escalation_cost_usd": result.cost_usd,
        },
        findings=[f"escalated: {problem}"],
        log_excerpt=(
            f"escalated to the {result.tier_reached} tier: kept {winner.label} "
            f"({winner.model}, score {winner.score:.3f}) for module {module}"
        ),
        quality=winner.score,
    )
