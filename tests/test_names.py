"""P2F109: names that become files and package metadata are checked at compile time."""

from __future__ import annotations

import pytest
from support import plan_text

from plan2flow.compiler import PlanError, compile_plan


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(PlanError) as caught:
        compile_plan(text, "plan.yaml")
    return [(d.pointer, d.message) for d in caught.value.diagnostics if d.code == "P2F109"]


def assemble_task(params: str) -> str:
    return f"  - {{id: a, type: assemble, outputs: [project], params: {params}}}\n"


@pytest.mark.parametrize(
    ("params", "pointer", "message"),
    [
        ("{version: '1.0/../x'}", "/tasks/0/params/version", "not a valid version (PEP 440)"),
        ("{project_name: ../x}", "/tasks/0/params/project_name", "not a valid distribution"),
        ("{project_name: -x}", "/tasks/0/params/project_name", "not a valid distribution"),
        ("{python_requires: '>=abc'}", "/tasks/0/params/python_requires", "not a version spec"),
        ("{dependencies: ['a b c']}", "/tasks/0/params/dependencies/0", "not a valid requirement"),
        ("{scripts: {x: 'a b'}}", "/tasks/0/params/scripts/x", "target 'a b' is not"),
        ("{scripts: {a/b: 'm:f'}}", "/tasks/0/params/scripts/a~1b", "name 'a/b' is not"),
    ],
)
def test_assemble_params_are_checked(params: str, pointer: str, message: str) -> None:
    ((where, text),) = problems(plan_text("p", assemble_task(params)))
    assert where == pointer and message in text


@pytest.mark.parametrize("module", ["../../../../x", "a/b", "a.b", "2x", "import", "é"])
def test_a_generated_module_is_one_python_identifier(module: str) -> None:
    params = f"{{spec: {{module: '{module}'}}}}"
    task = f"  - {{id: g, type: generate_code, outputs: [code], params: {params}}}\n"
    ((where, text),) = problems(plan_text("p", task))
    assert where == "/tasks/0/params/spec/module" and repr(module) in text


def test_valid_names_and_run_time_templates_pass() -> None:
    params = (
        "{project_name: Inventory.Service_2, version: '1.0.post1', python_requires: '>=3.11,<4',"
        " dependencies: ['requests[socks]>=2.31; python_version < \"3.13\"', click],"
        " scripts: {inv-report: 'pkg.report:main'}}"
    )
    templated = "{version: '${{ params.v }}', project_name: '${{ params.n }}'}"
    text = plan_text(
        "p",
        assemble_task(params)
        + assemble_task(templated).replace("id: a", "id: b")
        + "  - {id: g, type: generate_code, outputs: [code], params: {spec: {module: my_mod}}}\n"
        + "  - {id: h, type: generate_code, outputs: [code]}\n",
        extra="params: {v: {default: '1'}, n: {default: x}}\n",
    )
    compile_plan(text, "plan.yaml")


def test_delivery_checks_the_version_it_inherits_only_when_it_does() -> None:
    base = (
        "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: p, version: 'not a version'}\n"
        "components: [{name: core}]\n"
    )
    inherited = problems(base + "delivery: {assemble: {}}\n")
    assert inherited == [
        ("/metadata/version", "version 'not a version' is not a valid version (PEP 440)")
    ]
    compile_plan(base + "delivery: {assemble: {params: {version: '2.0'}}}\n", "plan.yaml")
    compile_plan(base, "plan.yaml")
