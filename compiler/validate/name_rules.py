"""P2F109: module names, distribution names, versions, requirements and console scripts that the
agents would turn into files and package metadata must be what they claim to be.

Values that hold a ``${{ }}`` expression are known only at run time; the agents check those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..errors import Diagnostic, diagnostic, pointer_join
from ..spec import names
from ..spec.component_spec import ComponentSpec
from ..spec.params import AssembleParams
from .schema import ValidatedPlan

Check = Callable[[str], str | None]

_ASSEMBLE_FIELDS: tuple[tuple[str, Check], ...] = (
    ("project_name", names.project_name_problem),
    ("version", names.version_problem),
    ("python_requires", names.python_requires_problem),
)


def _problem(check: Check, value: str | None, pointer: str, hint: str) -> Iterator[Diagnostic]:
    if value is None or "${{" in value:
        return
    found = check(value)
    if found is not None:
        yield diagnostic("P2F109", found, pointer, hint=names.HINTS[hint])


def _module(spec: ComponentSpec | None, pointer: str) -> Iterator[Diagnostic]:
    if spec is not None:
        yield from _problem(names.module_problem, spec.module, f"{pointer}/module", "module")


def _assemble(params: AssembleParams, pointer: str) -> Iterator[Diagnostic]:
    for field, check in _ASSEMBLE_FIELDS:
        yield from _problem(check, getattr(params, field), f"{pointer}/{field}", field)
    for index, requirement in enumerate(params.dependencies):
        where = f"{pointer}/dependencies/{index}"
        yield from _problem(names.requirement_problem, requirement, where, "dependencies")
    for command, target in params.scripts.items():
        found = None if "${{" in command + target else names.script_problem(command, target)
        if found is not None:
            where = pointer + pointer_join("scripts", command)
            yield diagnostic(
                "P2F109", found, where, hint=names.HINTS["scripts"], on_key="name" in found
            )


def _components(plan: ValidatedPlan) -> Iterator[Diagnostic]:
    for component, pointer in zip(plan.spec.components, plan.component_pointers, strict=True):
        if component.spec.module is not None:
            yield from _module(component.spec, f"{pointer}/spec")
            continue
        default = component.name.replace("-", "_")
        found = names.module_problem(default)
        if found is not None:
            yield diagnostic(
                "P2F109",
                f"component {component.name!r} needs a spec.module: {found}",
                f"{pointer}/name",
                hint="rename the component, or set its spec.module",
            )


def _tasks(plan: ValidatedPlan) -> Iterator[Diagnostic]:
    for task, pointer in zip(plan.spec.tasks, plan.task_pointers, strict=True):
        params: Any = task.params
        if task.type == "generate_code":
            yield from _module(params.spec, f"{pointer}/params/spec")
        elif task.type == "assemble":
            yield from _assemble(params, f"{pointer}/params")


def _delivery(plan: ValidatedPlan) -> Iterator[Diagnostic]:
    delivery = plan.spec.delivery
    if delivery is None or delivery.assemble is None:
        return
    yield from _assemble(delivery.assemble.params, "/delivery/assemble/params")
    metadata = plan.spec.metadata
    if delivery.assemble.params.version is None and metadata.version is not None:
        # The plan's version is the assembled project's version.
        yield from _problem(names.version_problem, metadata.version, "/metadata/version", "version")


def check_names(plan: ValidatedPlan) -> list[Diagnostic]:
    """Every P2F109 problem of the plan's valid parts."""
    return [*_tasks(plan), *_components(plan), *_delivery(plan)]
