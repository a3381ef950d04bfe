"""The `approval` task type in the compiler: its params validated and located, its node
normalized (never retried, no Prefect task timeout, a `decision` artifact), its branch checked
against the graph, its content hashed."""

from __future__ import annotations

from typing import Any

import pytest

from plan2flow.compiler import PlanError, compile_plan
from plan2flow.compiler.review.draw import mermaid

HEAD = "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: t}\n"


def _tasks(body: str) -> dict[str, dict[str, Any]]:
    document = compile_plan(HEAD + body, "p.yaml", strict=True).graph.document
    return {task["id"]: task for task in document["tasks"]}


def _problems(body: str) -> list[tuple[str, str, str, str | None]]:
    with pytest.raises(PlanError) as caught:
        compile_plan(HEAD + body, "p.yaml", strict=True)
    return [(d.code, d.pointer, d.message, d.hint) for d in caught.value.diagnostics]


def _approval(params: str, extra: str = "") -> str:
    return (
        "tasks:\n"
        "  - {id: build, type: noop}\n"
        f"  - {{id: review, type: approval, depends_on: [build], {extra}params: {params}}}\n"
        "  - {id: deploy, type: noop, depends_on: [review]}\n"
        "  - {id: undo, type: noop, depends_on: [review]}\n"
    )


def test_defaults_are_written_into_the_graph() -> None:
    review = _tasks(_approval("{}"))["review"]
    assert review["params"] == {
        "body": "",
        "branch": {},
        "form": {},
        "mode": "pause",
        "on_timeout": "fail",
        "options": ["approve", "reject"],
        "respondents": [],
        "timeout_seconds": 86400.0,
    }
    assert review["outputs"] == ["decision"]


def test_defaults_for_retries_and_timeouts_do_not_apply_to_approvals() -> None:
    found = _tasks("defaults: {retries: 3, timeout_seconds: 60}\n" + _approval("{}"))
    assert (found["review"]["retries"], found["review"]["timeout_seconds"]) == (0, None)
    assert (found["build"]["retries"], found["build"]["timeout_seconds"]) == (3, 60.0)


def test_a_full_approval_is_recorded_and_its_decision_consumed() -> None:
    body = (
        "params: {version: {type: string, default: '1'}}\n"
        "tasks:\n"
        "  - {id: build, type: noop}\n"
        "  - id: review\n"
        "    type: approval\n"
        "    depends_on: [build]\n"
        "    outputs: [decision]\n"
        "    params:\n"
        "      body: 'Ship ${{ params.version }}?'\n"
        "      options: [ship, hold]\n"
        "      form:\n"
        "        ticket: {type: string, required: true}\n"
        "        count: {type: number, default: 2}\n"
        "        ok: {type: boolean, default: true}\n"
        "      branch: {ship: [deploy]}\n"
        "      respondents: [alice]\n"
        "      timeout_seconds: 5\n"
        "      on_timeout: fail\n"
        "      mode: suspend\n"
        "  - {id: deploy, type: noop, inputs: {answer: review.decision}}\n"
    )
    found = _tasks(body)
    params = found["review"]["params"]
    assert params["body"] == "Ship ${{ params.version }}?"
    assert params["form"]["count"] == {
        "default": 2,
        "description": "",
        "required": False,
        "type": "number",
        "values": [],
    }
    assert (params["branch"], params["mode"], params["timeout_seconds"]) == (
        {"ship": ["deploy"]},
        "suspend",
        5.0,
    )
    assert found["deploy"]["inputs"] == {"answer": "review.decision"}


def test_the_answer_options_are_part_of_the_task_hash() -> None:
    one = _tasks(_approval("{options: [ok, later]}"))
    two = _tasks(_approval("{options: [ok, later, never]}"))
    assert one["review"]["hash"] != two["review"]["hash"]
    assert one["deploy"]["hash"] != two["deploy"]["hash"]
    assert one["build"]["hash"] == two["build"]["hash"]


def test_an_unconsumed_decision_is_no_warning() -> None:
    assert _tasks(_approval("{}"))["review"]["outputs"] == ["decision"]


def test_only_decision_may_be_declared_as_an_output() -> None:
    found = _problems(_approval("{}", "outputs: [report], "))
    assert found == [
        (
            "P2F105",
            "/tasks/1/outputs/0",
            "'outputs' must be 'decision'; got string 'report'",
            None,
        )
    ]


def test_step_retries_and_timeout_are_refused() -> None:
    found = _problems(_approval("{}", "retries: 1, timeout_seconds: 9, "))
    assert found == [
        (
            "P2F105",
            "/tasks/1/retries",
            "approval task 'review' is never retried",
            "remove 'retries'",
        ),
        (
            "P2F105",
            "/tasks/1/timeout_seconds",
            "approval task 'review' waits until params.timeout_seconds",
            "move it to params.timeout_seconds",
        ),
    ]


def test_options_branch_and_on_timeout_must_agree() -> None:
    found = _problems(
        _approval("{options: [ship, hold, ship], branch: {shp: [deploy]}, on_timeout: retry}")
    )
    assert found == [
        ("P2F105", "/tasks/1/params/options/2", "option 'ship' is listed twice", "remove one"),
        (
            "P2F111",
            "/tasks/1/params/branch/shp",
            "branch option 'shp' is not one of the options",
            "did you mean 'ship'?",
        ),
        (
            "P2F111",
            "/tasks/1/params/on_timeout",
            "on_timeout 'retry' is not one of the options",
            "options: ship, hold",
        ),
    ]


def test_a_suspended_approval_cannot_answer_at_its_deadline() -> None:
    found = _problems(_approval("{mode: suspend, on_timeout: approve}"))
    assert found == [
        (
            "P2F105",
            "/tasks/1/params/on_timeout",
            "the deadline of a suspended approval fails its run: no process is left to answer "
            "'approve'",
            "use on_timeout: fail, or mode: pause",
        )
    ]


def test_on_timeout_may_be_an_option_or_fail() -> None:
    assert _tasks(_approval("{on_timeout: reject}"))["review"]["params"]["on_timeout"] == "reject"
    assert _tasks(_approval("{on_timeout: fail}"))["review"]["params"]["on_timeout"] == "fail"


FIELD_CASES = [
    (
        "{option: {type: string}}",
        (
            "P2F105",
            "/tasks/1/params/form/option",
            "form field name 'option' is reserved",
            "the answer holds 'option' and 'respondent' itself: rename the field",
        ),
    ),
    (
        "{risk: {type: enum}}",
        (
            "P2F103",
            "/tasks/1/params/form/risk",
            "missing required field 'values'",
            "an enum field lists its choices in 'values'",
        ),
    ),
    (
        "{note: {type: string, values: [a]}}",
        (
            "P2F105",
            "/tasks/1/params/form/note/values",
            "'values' applies to enum fields; 'note' is string",
            "remove 'values', or make the field type: enum",
        ),
    ),
    (
        "{note: {type: string, required: true, default: x}}",
        (
            "P2F105",
            "/tasks/1/params/form/note/default",
            "required form field 'note' has a default",
            "remove the default, or set required: false",
        ),
    ),
    (
        "{size: {type: integer, default: big}}",
        (
            "P2F104",
            "/tasks/1/params/form/size/default",
            "default of form field 'size' must be an integer; got string 'big'",
            None,
        ),
    ),
    (
        "{size: {type: integer, default: 1.5}}",
        (
            "P2F104",
            "/tasks/1/params/form/size/default",
            "default of form field 'size' must be an integer; got number 1.5",
            None,
        ),
    ),
    (
        "{ok: {type: boolean, default: 1}}",
        (
            "P2F104",
            "/tasks/1/params/form/ok/default",
            "default of form field 'ok' must be a boolean (true or false); got integer 1",
            None,
        ),
    ),
    (
        "{level: {type: enum, values: [low, high], default: 3}}",
        (
            "P2F104",
            "/tasks/1/params/form/level/default",
            "default of form field 'level' must be a string; got integer 3",
            None,
        ),
    ),
    (
        "{level: {type: enum, values: [low, high], default: hihg}}",
        (
            "P2F111",
            "/tasks/1/params/form/level/default",
            "default of form field 'level' is not one of its values",
            "did you mean 'high'?",
        ),
    ),
    (
        "{level: {type: enum, values: [low, high], default: medium}}",
        (
            "P2F111",
            "/tasks/1/params/form/level/default",
            "default of form field 'level' is not one of its values",
            "values: low, high",
        ),
    ),
    (
        "{kind: {type: date}}",
        (
            "P2F105",
            "/tasks/1/params/form/kind/type",
            "'type' must be 'boolean', 'enum', 'integer', 'number' or 'string'; got string 'date'",
            None,
        ),
    ),
]


@pytest.mark.parametrize(("form", "expected"), FIELD_CASES, ids=[c[1][2] for c in FIELD_CASES])
def test_form_fields_are_checked_where_they_are_written(
    form: str, expected: tuple[str, str, str, str | None]
) -> None:
    assert _problems(_approval(f"{{form: {form}}}")) == [expected]


def test_well_typed_form_defaults_compile() -> None:
    form = (
        "{form: {a: {type: string, default: x}, b: {type: integer, default: 2}, "
        "c: {type: number, default: 2.5}, d: {type: boolean, default: false}, "
        "e: {type: enum, values: [x, y], default: y}, f: {type: string, required: true}}}"
    )
    fields = _tasks(_approval(form))["review"]["params"]["form"]
    assert [fields[name]["default"] for name in "abcdef"] == ["x", 2, 2.5, False, "y", None]


def test_branch_targets_must_be_directly_downstream() -> None:
    found = _problems(_approval("{branch: {approve: [deploy, build], reject: [undo]}}"))
    assert found == [
        (
            "P2F211",
            "/tasks/1/params/branch/approve/1",
            "branch 'approve' of 'review' names 'build', which is not directly downstream of "
            "'review'",
            "downstream of it: deploy, undo",
        )
    ]


def test_a_branch_of_an_approval_without_downstream_says_how_to_fix_it() -> None:
    body = (
        "tasks:\n"
        "  - {id: build, type: noop}\n"
        "  - {id: review, type: approval, depends_on: [build], "
        "params: {branch: {approve: [build]}}}\n"
    )
    assert _problems(body) == [
        (
            "P2F211",
            "/tasks/1/params/branch/approve/0",
            "branch 'approve' of 'review' names 'build', which is not directly downstream of "
            "'review'",
            "make the task depend on 'review'",
        )
    ]


def test_an_agent_on_an_approval_is_refused() -> None:
    found = _problems(_approval("{}", "agent: people, "))
    assert [code for code, *_ in found] == ["P2F208"]


def test_approvals_are_drawn_as_diamonds() -> None:
    document = compile_plan(HEAD + _approval("{}"), "p.yaml").graph.document
    assert '  t_review{"review"}\n' in mermaid(document)
