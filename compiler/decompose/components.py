"""Rule `component`: each component → ``<name>.generate_code`` → ``.validate`` → ``.test``.

Components are ordered by their own ``depends_on``: a component's code is generated after the code
of the components it imports, and its validate and test steps receive the code of every component
it depends on, directly or not, so imports resolve.
"""

from __future__ import annotations

from ..errors import Diagnostic, diagnostic
from ..load import DEFAULT_LIMITS, Limits
from ..spec import Component
from ..spec.tasks import StepFields
from ..validate.schema import ValidatedPlan
from ..validate.suggest import Suggester
from .nodes import Dependency, Input, Origin, TaskNode, make_node

RULE = "component"


def _closure(name: str, requires: dict[str, list[str]], steps: int) -> tuple[list[str], int]:
    """Every component `name` depends on, directly or not (cycles are reported elsewhere), and
    the steps left of `steps`; ``([], -1)`` when following the dependencies takes more."""
    seen: set[str] = set()
    stack = list(requires.get(name, []))
    while stack:
        steps -= 1
        if steps < 0:
            return [], -1
        current = stack.pop()
        if current in seen or current == name:
            continue
        seen.add(current)
        stack.extend(requires.get(current, []))
    return sorted(seen), steps


def _closures(
    requires: dict[str, list[str]], limits: Limits
) -> tuple[dict[str, list[str]], str | None]:
    """Each component's transitive dependencies, within ``max_edges`` steps for all of them.

    Each one becomes an input of two tasks (and of every matrix expansion of the test), so a
    chain of components is quadratic: 3,000 of them (115 KB of YAML) took 161 s and 11 GB.
    Returns the closures, or the component at which the budget ran out.
    """
    found: dict[str, list[str]] = {}
    steps = limits.max_edges
    for name in requires:
        found[name], steps = _closure(name, requires, steps)
        if steps < 0:
            return {}, name
    return found, None


def nodes_from_components(
    plan: ValidatedPlan, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[TaskNode], list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    known = {c.name for c in plan.spec.components} | plan.unchecked_components
    suggest = Suggester(known)
    first: dict[str, str] = {}
    requires: dict[str, list[str]] = {}
    components: list[tuple[Component, str]] = []
    for component, pointer in zip(plan.spec.components, plan.component_pointers, strict=True):
        if component.name in first:
            diagnostics.append(
                diagnostic(
                    "P2F206",
                    f"component '{component.name}' is defined twice",
                    f"{pointer}/name",
                    hint="give each component a unique name",
                )
            )
            continue
        first[component.name] = pointer
        components.append((component, pointer))
        requires[component.name] = []
        for index, dep in enumerate(component.depends_on):
            dep_pointer = f"{pointer}/depends_on/{index}"
            if dep not in known:
                diagnostics.append(
                    diagnostic(
                        "P2F207",
                        f"component '{component.name}' depends on unknown component '{dep}'",
                        dep_pointer,
                        hint=suggest(dep),
                    )
                )
            elif dep == component.name:
                diagnostics.append(
                    diagnostic("P2F203", f"component '{dep}' depends on itself", dep_pointer)
                )
            else:
                requires[component.name].append(dep)

    closures, over = _closures(requires, limits)
    if over is not None:
        diagnostics.append(
            diagnostic(
                "P2F105",
                f"the components up to '{over}' depend on too many components, directly or not: "
                f"following their dependencies takes more than {limits.max_edges} steps",
                first[over] + "/depends_on",
                hint="let each component depend only on the components it imports",
            )
        )
        return [], diagnostics
    nodes: list[TaskNode] = []
    for component, pointer in components:
        nodes.extend(_chain(plan, component, pointer, requires, closures[component.name]))
    return nodes, diagnostics


def _chain(
    plan: ValidatedPlan,
    component: Component,
    pointer: str,
    requires: dict[str, list[str]],
    closure: list[str],
) -> list[TaskNode]:
    name = component.name
    defaults = plan.spec.defaults
    origin = Origin(RULE, f"components[{name}]", pointer)
    generate_id, validate_id, test_id = f"{name}.generate_code", f"{name}.validate", f"{name}.test"
    direct = {
        f"dep_{dep}": Input(
            f"dep_{dep}",
            f"{dep}.generate_code",
            "code",
            f"{pointer}/depends_on/{component.depends_on.index(dep)}",
        )
        for dep in requires[name]
    }
    own_code = Input("code", generate_id, "code", pointer)
    with_deps = {"code": own_code}
    for dep in closure:
        where = direct.get(f"dep_{dep}")
        with_deps[f"dep_{dep}"] = Input(
            f"dep_{dep}", f"{dep}.generate_code", "code", where.pointer if where else pointer
        )
    spec = component.spec
    if spec.module is None:
        spec = spec.model_copy(update={"module": name.replace("-", "_")})
    step = StepFields(description=component.description, tags=component.tags)
    generate = make_node(
        id=generate_id,
        type="generate_code",
        step=step,
        defaults=defaults,
        pointer=pointer,
        origin=origin,
        component=name,
        params={"language": "python", "spec": spec.model_dump(mode="json")},
        outputs=["code"],
        extra_inputs=direct,
        escalation=component.escalation,
    )
    validate = make_node(
        id=validate_id,
        type="validate",
        step=step,
        defaults=defaults,
        pointer=pointer,
        origin=origin,
        component=name,
        params=component.validate_params.model_dump(mode="json"),
        outputs=["report"],
        extra_inputs=with_deps,
    )
    test = make_node(
        id=test_id,
        type="test",
        step=step,
        defaults=defaults,
        pointer=pointer,
        origin=origin,
        component=name,
        params=component.test_params.model_dump(mode="json"),
        outputs=["junit"],
        extra_inputs=with_deps,
        extra_depends_on=[Dependency(validate_id, pointer)],
        matrix_axes=component.matrix,
        matrix_pointer=f"{pointer}/matrix",
    )
    return [generate, validate, test]
