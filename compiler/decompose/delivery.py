"""Rule `delivery`: the release chain ``assemble`` → ``package`` → ``deploy`` after the components.

``assemble`` receives every component's code and waits for every component's tests (all matrix
expansions); each present step consumes the artifact of the one before it.
"""

from __future__ import annotations

from ..errors import Diagnostic
from ..load import DEFAULT_LIMITS, Limits
from ..spec.components import AssembleStep, Component, DeployStep, PackageStep
from ..validate.schema import ValidatedPlan
from .nodes import Dependency, Input, Origin, TaskNode, make_node

RULE = "delivery"

# step name → (output artifact, local input name in the next step)
_OUTPUTS = {"assemble": "project", "package": "dist", "deploy": "release"}


def nodes_from_delivery(
    plan: ValidatedPlan, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[TaskNode], list[Diagnostic]]:
    delivery = plan.spec.delivery
    if delivery is None:
        return [], []
    spec = plan.spec
    # The first of each name: a duplicate component is reported by the component rule.
    first: dict[str, tuple[Component, str]] = {}
    for component, pointer in zip(spec.components, plan.component_pointers, strict=True):
        first.setdefault(component.name, (component, pointer))

    steps: list[tuple[str, AssembleStep | PackageStep | DeployStep]] = [
        (name, step)
        for name, step in (
            ("assemble", delivery.assemble),
            ("package", delivery.package),
            ("deploy", delivery.deploy),
        )
        if step is not None
    ]
    nodes: list[TaskNode] = []
    previous: str | None = None
    for name, step in steps:
        pointer = f"/delivery/{name}"
        params = step.params.model_dump(mode="json")
        depends: list[Dependency] = []
        inputs: dict[str, Input] = {}
        if name == "assemble":
            params["project_name"] = params["project_name"] or spec.metadata.name
            params["version"] = params["version"] or spec.metadata.version or "0.0.0"
            for component, component_pointer in first.values():
                depends.append(Dependency(f"{component.name}.test", component_pointer))
                inputs[component.name] = Input(
                    component.name, f"{component.name}.generate_code", "code", component_pointer
                )
        if previous is not None:
            local = _OUTPUTS[previous]
            inputs[local] = Input(local, previous, local, pointer)
        nodes.append(
            make_node(
                id=name,
                type=name,
                step=step,
                defaults=spec.defaults,
                pointer=pointer,
                origin=Origin(RULE, f"delivery.{name}", pointer),
                params=params,
                outputs=[_OUTPUTS[name]],
                extra_depends_on=depends,
                extra_inputs=inputs,
            )
        )
        previous = name
    return nodes, []
