"""CodeGenerator: a component spec → a Python module and its tests, from templates.

Local and deterministic (jinja2 with StrictUndefined, sorted inputs): the same spec always gives
the same files. A function without a body cannot be derived from templates: the agent reports
it with quality 0. When the task's plan declares an escalation policy, the escalation chain
(:mod:`plan2flow.escalation`) takes over: models write the missing bodies as competing variants,
and the best one, by the tests it passes, is kept. With a policy the agent also runs the checks
of the validate and test tasks that take its code (:mod:`.downstream`) on the template's code
and on every variant that could be kept: code failing them goes to the chain with their output,
and no variant failing them is kept, so those tasks get code that passes them.
"""

from __future__ import annotations

import functools
import re
import shutil
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
from .downstream import Check, downstream_check

FINDINGS_FROM_CHECKS = 10
"""Lines of a failing downstream check kept in the findings of a failed escalation."""


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
        if request.escalation is not None:
            failure = _failed_checks(request, files)
            if failure is not None:
                return _escalated(request, spec, default_module, out, failure, files=files)
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


def _check_of(request: AgentRequest) -> Check | None:
    """The checks of the validate and test tasks that take this task's code."""
    dependencies = {n: p for n, p in sorted(request.inputs.items()) if n.startswith("dep_")}
    return downstream_check(request.checks, dependencies, request.task_id)


def _failed_checks(request: AgentRequest, files: dict[str, str]) -> str | None:
    """The template's code run through the downstream checks: their failure, or None."""
    check = _check_of(request)
    if check is None:
        return None
    directory = Path(request.workspace) / "escalation" / "template"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for name, text in sorted(files.items()):
        inside(directory, name).write_text(text, encoding="utf-8")
    return check(directory)


def _feedback(module: str, files: dict[str, str], failure: str) -> str:
    """What the model reads about code that fails the downstream checks: the code and why."""
    return (
        f"The current code of `{module}` fails the checks of the steps after this one; write "
        "every function's body again so that they pass.\n"
        f"```python\n{files[f'{module}.py'].rstrip()}\n```\n{failure}"
    )


def _without_bodies(spec: dict[str, Any]) -> dict[str, Any]:
    functions = [{**f, "body": None} for f in spec.get("functions", [])]
    return {**spec, "functions": functions}


def _escalated(
    request: AgentRequest,
    spec: dict[str, Any],
    default_module: str,
    out: Path,
    problem: str,
    *,
    files: dict[str, str] | None = None,
) -> AgentResult:
    """The template's result was not good enough (no body, or ``files`` that fail the
    downstream checks with ``problem``): run the escalation chain and keep its winner, or report
    the tier it reached and why."""
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
    asked = {**spec, "module": module}
    feedback = ""
    if files is not None:
        asked, feedback = _without_bodies(asked), _feedback(module, files, problem)
    task = CodeTask(
        task_id=request.task_id,
        spec=asked,
        render=lambda filled: render_component(dict(filled), default_module)[1],
        dependency_paths=paths,
        dependencies=code,
        plan=request.plan,
        flow_run_id=request.correlation_id,
        check=_check_of(request),
        feedback=feedback,
    )
    local = Variant("0-local-1", "local", problem=problem)
    if files is not None:
        local = Variant("0-local-1", "local", files=files, checks=problem, checked=True)
    try:
        result = escalate(
            task,
            policy_from_record(request.escalation or {}),
            workdir=Path(request.workspace) / "escalation",
            local=local,
        )
    except EscalationError as error:
        findings = [*problem.splitlines()[:FINDINGS_FROM_CHECKS], str(error)]
        return AgentResult(outcome=Outcome.FAILED, findings=findings, quality=0.0)
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
        findings=[f"escalated: {line}" for line in problem.splitlines()[:1]],
        log_excerpt=(
            f"escalated to the {result.tier_reached} tier: kept {winner.label} "
            f"({winner.model}, score {winner.score:.3f}) for module {module}"
        ),
        quality=winner.score,
    )
