"""Compiler semantics: normalization, decomposition rules, linking, checks and hashes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from plan2flow.compiler import PlanError, Severity, compile_plan
from plan2flow.compiler.decompose.agents import AGENT_SCHEMA_CHECKSUMS
from plan2flow.compiler.graph.taskgraph import graph_hash
from plan2flow.compiler.report import format_human
from plan2flow.compiler.report.human import MAX_PER_FILE

HEAD = "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: t}\n"


def compile_text(body: str, **options: Any) -> dict[str, Any]:
    return compile_plan(HEAD + body, "p.yaml", **options).graph.document


def tasks(body: str) -> dict[str, dict[str, Any]]:
    return {task["id"]: task for task in compile_text(body)["tasks"]}


def errors(body: str, **options: Any) -> list[tuple[str, str]]:
    with pytest.raises(PlanError) as caught:
        compile_plan(HEAD + body, "p.yaml", **options)
    return [(d.code, d.message) for d in caught.value.diagnostics]


def test_defaults_apply_and_tasks_override_them() -> None:
    found = tasks(
        "defaults: {retries: 2, retry_delay_seconds: 5, timeout_seconds: 60, tags: [etl]}\n"
        "tasks:\n"
        "  - {id: a, type: noop}\n"
        "  - {id: b, type: noop, depends_on: [a], retries: 0, timeout_seconds: 1, tags: [x]}\n"
    )
    assert (found["a"]["retries"], found["a"]["retry_delay_seconds"]) == (2, 5.0)
    assert found["a"]["timeout_seconds"] == 60.0
    assert found["a"]["tags"] == ["etl"]
    assert (found["b"]["retries"], found["b"]["timeout_seconds"], found["b"]["tags"]) == (
        0,
        1.0,
        ["etl", "x"],
    )


def test_integer_and_float_spellings_normalize_to_the_same_bytes() -> None:
    one = compile_text("tasks:\n  - {id: a, type: noop, retry_delay_seconds: 10}\n")
    two = compile_text("tasks:\n  - {id: a, type: noop, retry_delay_seconds: 10.0}\n")
    three = compile_text("tasks:\n  - {id: a, type: noop}\n")
    assert one["hash"] == two["hash"] == three["hash"]


def test_topological_order_breaks_ties_by_id() -> None:
    document = compile_text(
        "tasks:\n"
        "  - {id: z, type: noop}\n"
        "  - {id: m, type: noop, depends_on: [z]}\n"
        "  - {id: a, type: noop, depends_on: [z]}\n"
        "  - {id: b, type: noop}\n"
        "  - {id: end, type: noop, depends_on: [a, m, b]}\n"
    )
    assert [t["id"] for t in document["tasks"]] == ["b", "z", "a", "m", "end"]
    assert [(e["from"], e["to"]) for e in document["edges"]] == [
        ("a", "end"),
        ("b", "end"),
        ("m", "end"),
        ("z", "a"),
        ("z", "m"),
    ]


def test_inputs_imply_edges_and_artifacts_list_consumers() -> None:
    document = compile_text(
        "tasks:\n"
        "  - {id: a, type: shell, params: {argv: [x]}, outputs: [raw, log]}\n"
        "  - {id: b, type: noop, inputs: {data: a.raw}, depends_on: [a]}\n"
        "  - {id: c, type: noop, inputs: {data: a.raw, log: a.log}}\n"
    )
    assert document["edges"] == [
        {"artifacts": ["raw"], "from": "a", "to": "b"},
        {"artifacts": ["log", "raw"], "from": "a", "to": "c"},
    ]
    assert document["artifacts"] == [
        {"consumers": ["c"], "id": "a.log", "name": "log", "producer": "a"},
        {"consumers": ["b", "c"], "id": "a.raw", "name": "raw", "producer": "a"},
    ]


def test_matrix_expands_with_sorted_axes_and_substitutes_values() -> None:
    found = tasks(
        "tasks:\n"
        "  - id: build\n"
        "    type: shell\n"
        "    matrix: {python: ['3.12', '3.11'], os: [linux], debug: [true], n: [1]}\n"
        "    params: {argv: [make, 'PY=${{ matrix.python }}', '${{matrix.debug}}']}\n"
        "  - {id: after, type: noop, depends_on: [build]}\n"
    )
    ids = sorted(found)
    assert ids == [
        "after",
        "build[debug=true,n=1,os=linux,python=3.11]",
        "build[debug=true,n=1,os=linux,python=3.12]",
    ]
    expanded = found["build[debug=true,n=1,os=linux,python=3.12]"]
    assert expanded["params"]["argv"] == ["make", "PY=3.12", "true"]
    assert expanded["matrix"] == {"debug": True, "n": 1, "os": "linux", "python": "3.12"}
    assert found["after"]["depends_on"] == ids[1:]


def test_an_input_may_name_one_expansion() -> None:
    found = tasks(
        "tasks:\n"
        "  - {id: b, type: shell, matrix: {v: [x, y]}, params: {argv: [c]}, outputs: [o]}\n"
        "  - {id: c, type: noop, inputs: {o: 'b[v=y].o'}}\n"
    )
    assert found["c"]["inputs"] == {"o": "b[v=y].o"}
    assert found["c"]["depends_on"] == ["b[v=y]"]


def test_runtime_templates_are_kept_for_the_runtime() -> None:
    found = tasks(
        "params: {who: {default: me}}\n"
        "tasks:\n"
        "  - id: a\n"
        "    type: shell\n"
        "    params:\n"
        "      argv: ['${{ params.who }}', '${{ outputs.o }}']\n"
        "      env: {X: '${{ params.who }}'}\n"
        "    outputs: [o]\n"
        "  - {id: b, type: shell, inputs: {i: a.o}, params: {argv: [cat, '${{ inputs.i }}']}}\n"
    )
    assert found["a"]["params"]["argv"] == ["${{ params.who }}", "${{ outputs.o }}"]
    assert found["a"]["params"]["env"] == {"X": "${{ params.who }}"}
    assert found["b"]["params"]["argv"] == ["cat", "${{ inputs.i }}"]


def test_matrix_limit() -> None:
    axis = "[" + ", ".join(str(i) for i in range(20)) + "]"
    found = errors(f"tasks:\n  - {{id: a, type: noop, matrix: {{x: {axis}, y: {axis}}}}}\n")
    assert found == [("P2F105", "matrix of 'a' expands to 400 tasks; the limit is 256")]


def test_expanded_ids_that_collide_are_duplicates() -> None:
    found = errors("tasks:\n  - {id: a, type: noop, matrix: {v: [1, '1']}}\n")
    assert found == [("P2F201", "duplicate task id 'a[v=1]'")]


def test_components_expand_into_wired_chains() -> None:
    document = compile_text(
        "components:\n"
        "  - name: core\n"
        "  - {name: api, depends_on: [core], matrix: {python: ['3.11', '3.12']}}\n"
        "  - {name: cli, depends_on: [api]}\n"
    )
    found = {task["id"]: task for task in document["tasks"]}
    assert sorted(found) == [
        "api.generate_code",
        "api.test[python=3.11]",
        "api.test[python=3.12]",
        "api.validate",
        "cli.generate_code",
        "cli.test",
        "cli.validate",
        "core.generate_code",
        "core.test",
        "core.validate",
    ]
    assert found["cli.generate_code"]["inputs"] == {"dep_api": "api.generate_code.code"}
    # Validate and test get the code of every component depended on, directly or not.
    assert found["cli.test"]["inputs"] == {
        "code": "cli.generate_code.code",
        "dep_api": "api.generate_code.code",
        "dep_core": "core.generate_code.code",
    }
    assert "cli.validate" in found["cli.test"]["depends_on"]
    assert found["core.generate_code"]["params"]["spec"]["module"] == "core"
    assert found["api.test[python=3.12]"]["component"] == "api"
    assert found["core.generate_code"]["origin"] == {
        "rule": "component",
        "source": "components[core]",
    }
    assert found["core.generate_code"]["agent"] == {
        "block_document": "default",
        "block_schema_checksum": AGENT_SCHEMA_CHECKSUMS["plan2flow-code-generator"],
        "block_type": "plan2flow-code-generator",
    }


def test_delivery_follows_every_component_test_and_chains_its_steps() -> None:
    found = tasks(
        "components:\n  - name: core\n  - {name: api, matrix: {py: ['3.11', '3.12']}}\n"
        "delivery:\n  assemble: {}\n  deploy: {params: {target: venv}}\n"
    )
    assert found["assemble"]["depends_on"] == [
        "api.generate_code",
        "api.test[py=3.11]",
        "api.test[py=3.12]",
        "core.generate_code",
        "core.test",
    ]
    assert found["assemble"]["params"]["project_name"] == "t"
    assert found["assemble"]["params"]["version"] == "0.0.0"
    assert found["deploy"]["inputs"] == {"project": "assemble.project"}
    assert found["deploy"]["origin"] == {"rule": "delivery", "source": "delivery.deploy"}


def test_delivery_uses_plan_metadata_for_the_project() -> None:
    text = (
        "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: shop, version: '2.0'}\n"
        "components: [{name: core}]\ndelivery: {assemble: {}, package: {}, deploy: {}}\n"
    )
    found = {t["id"]: t for t in compile_plan(text, "p.yaml").graph.document["tasks"]}
    params = found["assemble"]["params"]
    assert (params["project_name"], params["version"]) == ("shop", "2.0")
    assert found["package"]["inputs"] == {"project": "assemble.project"}
    assert found["deploy"]["inputs"] == {"dist": "package.dist"}


def test_agents_resolve_from_task_then_defaults_then_default() -> None:
    found = tasks(
        "defaults: {agents: {test: gpu}}\n"
        "tasks:\n"
        "  - {id: a, type: generate_code}\n"
        "  - {id: b, type: test, depends_on: [a]}\n"
        "  - {id: c, type: test, depends_on: [a], agent: special}\n"
        "  - {id: d, type: shell, depends_on: [a], params: {argv: [x]}}\n"
    )
    assert found["a"]["agent"]["block_document"] == "default"
    assert found["b"]["agent"] == {
        "block_document": "gpu",
        "block_schema_checksum": AGENT_SCHEMA_CHECKSUMS["plan2flow-tester"],
        "block_type": "plan2flow-tester",
    }
    assert found["c"]["agent"]["block_document"] == "special"
    assert found["d"]["agent"] is None


def test_params_become_typed_flow_parameters() -> None:
    document = compile_text(
        "params:\n"
        "  day: {description: the day}\n"
        "  n: {type: integer, default: 3, enum: [1, 3]}\n"
        "  rate: {type: number, default: 1}\n"
        "  flags: {type: object, default: {a: 1}}\n"
        "  nothing: {type: array, default: null}\n"
        "tasks: [{id: a, type: noop}]\n"
    )
    params = document["params"]
    assert list(params) == ["day", "flags", "n", "nothing", "rate"]
    assert params["day"] == {
        "default": None,
        "description": "the day",
        "enum": None,
        "required": True,
        "type": "string",
    }
    assert params["n"]["required"] is False and params["n"]["default"] == 3
    assert params["nothing"]["required"] is False


def test_param_rules() -> None:
    found = errors(
        "params:\n"
        "  class: {type: integer, default: 1}\n"
        "  x: {type: boolean, enum: [true, 'no']}\n"
        "tasks: [{id: a, type: noop}]\n"
    )
    assert found == [
        ("P2F105", "parameter name 'class' is a Python keyword"),
        ("P2F107", "enum value of parameter 'x' is string 'no', but its type is boolean"),
    ]


def test_schedule_is_normalized() -> None:
    document = compile_text("schedule: {interval_seconds: 60}\ntasks: [{id: a, type: noop}]\n")
    assert document["schedule"] == {
        "cron": None,
        "interval_seconds": 60.0,
        "rrule": None,
        "timezone": "UTC",
    }


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9",
        "RRULE:FREQ=DAILY",
        "DTSTART:20260101T090000\nRRULE:FREQ=MONTHLY;BYMONTHDAY=1",
    ],
)
def test_rrule_schedules_are_kept_as_written(rule: str) -> None:
    plan = f"schedule: {{rrule: {json.dumps(rule)}, timezone: Europe/Berlin}}\n"
    document = compile_text(plan + "tasks: [{id: a, type: noop}]\n")
    assert document["schedule"]["rrule"] == rule
    assert document["schedule"]["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize("rule", ["WEEKLY", "FREQ=FORTNIGHTLY", "FREQ=DAILY;BYHOUR"])
def test_malformed_rrule_is_a_located_error(rule: str) -> None:
    found = errors(f"schedule: {{rrule: '{rule}'}}\ntasks: [{{id: a, type: noop}}]\n")
    assert [code for code, _ in found] == ["P2F105"]
    assert "RFC 5545" in found[0][1]


def test_schedule_with_two_kinds_is_an_error() -> None:
    found = errors("schedule: {cron: '@daily', rrule: FREQ=DAILY}\ntasks: [{id: a, type: noop}]\n")
    assert found == [
        ("P2F105", "a schedule needs exactly one of 'cron', 'interval_seconds' and 'rrule'")
    ]


def test_self_input_and_unknown_agent_type_default() -> None:
    found = errors(
        "defaults: {agents: {shell: x}}\n"
        "tasks:\n  - {id: a, type: shell, params: {argv: [x]}, outputs: [o], inputs: {i: a.o}}\n"
    )
    assert found == [
        ("P2F208", "task type 'shell' runs in the flow and has no agent"),
        ("P2F203", "task 'a' consumes its own artifact 'o'"),
    ]


def test_matrix_task_depending_on_itself() -> None:
    found = errors("tasks:\n  - {id: a, type: noop, matrix: {v: [1, 2]}, depends_on: [a]}\n")
    assert found == [("P2F203", "task 'a' depends on itself")]


def test_component_self_dependency_and_cycles() -> None:
    found = errors(
        "components:\n  - {name: a, depends_on: [a, b]}\n  - {name: b, depends_on: [a]}\n"
    )
    assert found == [
        ("P2F203", "component 'a' depends on itself"),
        (
            "P2F301",
            "dependency cycle: a.generate_code → b.generate_code → a.generate_code",
        ),
    ]


def test_two_separate_cycles_are_both_reported() -> None:
    found = errors(
        "tasks:\n"
        "  - {id: a, type: noop, depends_on: [b]}\n"
        "  - {id: b, type: noop, depends_on: [a]}\n"
        "  - {id: c, type: noop, depends_on: [d]}\n"
        "  - {id: d, type: noop, depends_on: [e]}\n"
        "  - {id: e, type: noop, depends_on: [c]}\n"
    )
    assert [message for _, message in found] == [
        "dependency cycle: a → b → a",
        "dependency cycle: c → d → e → c",
    ]


def test_references_to_invalid_tasks_are_not_reported_twice() -> None:
    found = errors(
        "tasks:\n"
        "  - {id: a, type: nope}\n"
        "  - {id: b, type: noop, depends_on: [a], inputs: {x: a.out}}\n"
        "components: [{name: c, bogus: 1}]\n"
        "delivery: {assemble: {depends_on: [c.test]}, nonsense: 1}\n"
    )
    assert [code for code, _ in found] == ["P2F106", "P2F102", "P2F102"]


def test_errors_in_metadata_do_not_hide_task_errors() -> None:
    with pytest.raises(PlanError) as caught:
        compile_plan(
            "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: BAD}\n"
            "defaults: {retries: x}\ntasks:\n  - {id: a, type: noop, depends_on: [zz]}\n",
            "p.yaml",
        )
    assert [d.code for d in caught.value.diagnostics] == ["P2F105", "P2F104", "P2F202"]


def test_deploy_rule_passes_with_validate_and_test_upstream() -> None:
    found = tasks(
        "tasks:\n"
        "  - {id: v, type: validate}\n"
        "  - {id: t, type: test, depends_on: [v]}\n"
        "  - {id: d, type: deploy, depends_on: [t]}\n"
    )
    assert found["d"]["depends_on"] == ["t"]


def test_deploy_rule_still_checked_next_to_other_errors() -> None:
    found = errors(
        "defaults: {retries: -1}\ntasks:\n  - {id: d, type: validate}\n"
        "  - {id: e, type: deploy, depends_on: [d]}\n"
    )
    assert found == [
        ("P2F105", "'retries' must be greater than or equal to 0; got integer -1"),
        ("P2F304", "deploy task 'e' has no 'test' task upstream"),
    ]


def test_warnings_are_returned_and_strict_promotes_them() -> None:
    body = "tasks:\n  - {id: a, type: noop}\n  - {id: b, type: noop}\n"
    result = compile_plan(HEAD + body, "p.yaml")
    assert [(w.code, w.severity, w.line) for w in result.warnings] == [
        ("P2F303", Severity.WARNING, 5),
        ("P2F303", Severity.WARNING, 6),
    ]
    assert [code for code, _ in errors(body, strict=True)] == ["P2F303", "P2F303"]


def test_single_task_plan_is_not_disconnected() -> None:
    assert compile_plan(HEAD + "tasks: [{id: a, type: noop}]\n", "p.yaml").warnings == ()


def test_unsupported_api_version_reports_only_that() -> None:
    with pytest.raises(PlanError) as caught:
        compile_plan("apiVersion: v9\nkind: Nope\ntasks: 3\n", "p.yaml")
    assert [d.code for d in caught.value.diagnostics] == ["P2F100"]


def test_no_tasks_at_all() -> None:
    with pytest.raises(PlanError) as caught:
        compile_plan(HEAD, "p.yaml")
    assert [(d.code, d.line) for d in caught.value.diagnostics] == [("P2F108", 1)]


def test_graph_hash_is_the_digest_of_the_text_without_its_hash_line() -> None:
    graph = compile_plan(HEAD + "tasks: [{id: a, type: noop}]\n", "p.yaml").graph
    assert graph_hash(graph.text) == graph.hash
    assert json.loads(graph.text) == graph.document
    assert graph.text.endswith("}\n") and graph.text.count('\n  "hash": ') == 1


def test_task_hash_changes_downstream_only() -> None:
    base = (
        "tasks:\n"
        "  - {id: a, type: noop}\n"
        "  - {id: b, type: noop, depends_on: [a]}\n"
        "  - {id: c, type: noop, depends_on: [b]}\n"
        "  - {id: x, type: noop, depends_on: [a]}\n"
    )
    before = {t["id"]: t["hash"] for t in compile_text(base)["tasks"]}
    after = {
        t["id"]: t["hash"]
        for t in compile_text(base.replace("[a]}\n  - {id: c", "[a], retries: 1}\n  - {id: c"))[
            "tasks"
        ]
    }
    assert {k for k in before if before[k] != after[k]} == {"b", "c"}


def test_human_format_caps_output_per_file() -> None:
    body = "tasks:\n" + "".join(f"  - {{id: t{i}, type: nope}}\n" for i in range(MAX_PER_FILE + 5))
    with pytest.raises(PlanError) as caught:
        compile_plan(HEAD + body, "p.yaml")
    text = format_human(caught.value.diagnostics, lambda _f, _l: "")
    assert text.count("P2F106") == MAX_PER_FILE
    assert text.endswith("p.yaml: ... and 5 more (use --format json to see all)\n")
    assert str(caught.value).startswith("p.yaml:5:20: P2F106 unknown task type 'nope'")


def test_provenance_locates_every_task_with_its_rule() -> None:
    text = (
        HEAD + "tasks:\n"
        "  - {id: a, type: noop}\n"
        "  - id: m\n"
        "    type: noop\n"
        "    depends_on: [a]\n"
        "    matrix: {v: [1, 2]}\n"
        "components:\n"
        "  - {name: c}\n"
        "delivery:\n"
        "  assemble: {}\n"
    )
    result = compile_plan(text, "p.yaml")
    found = {(p.task, p.rule, p.source, p.line, p.column) for p in result.provenance()}
    assert found == {
        ("a", "task", "tasks[a]", 5, 5),
        ("m[v=1]", "matrix", "tasks[m]", 6, 5),
        ("m[v=2]", "matrix", "tasks[m]", 6, 5),
        ("c.generate_code", "component", "components[c]", 11, 5),
        ("c.validate", "component", "components[c]", 11, 5),
        ("c.test", "component", "components[c]", 11, 5),
        ("assemble", "delivery", "delivery.assemble", 13, 13),
    }
    assert [p.task for p in result.provenance()] == [t["id"] for t in result.graph.tasks]


def test_unconsumed_output_points_at_its_written_position_also_for_matrix_tasks() -> None:
    body = (
        "tasks:\n"
        "  - {id: a, type: shell, params: {argv: [x]}, outputs: [raw, log]}\n"
        "  - {id: b, type: noop, inputs: {r: a.raw}}\n"
        "  - {id: m, type: shell, matrix: {v: [p, q]}, params: {argv: [x]}, outputs: [o]}\n"
        "  - {id: n, type: noop, depends_on: [m]}\n"
    )
    result = compile_plan(HEAD + body, "p.yaml")
    found = sorted((w.code, w.pointer, w.message) for w in result.warnings)
    assert found == [
        ("P2F302", "/tasks/0/outputs/1", "artifact 'a.log' is produced but never consumed"),
        ("P2F302", "/tasks/2/outputs/0", "artifact 'm[v=p].o' is produced but never consumed"),
        ("P2F302", "/tasks/2/outputs/0", "artifact 'm[v=q].o' is produced but never consumed"),
    ]


def test_unclosed_template_expressions_are_reported() -> None:
    found = errors("tasks:\n  - {id: a, type: shell, params: {argv: ['${{ params.x }']}}\n")
    assert found == [("P2F209", "unclosed template expression in '${{ params.x }'")]


def test_matrix_values_must_fit_in_task_ids() -> None:
    found = errors("tasks:\n  - {id: a, type: noop, matrix: {os: ['ubuntu latest', 'a,b']}}\n")
    assert [code for code, _ in found] == ["P2F105", "P2F105"]
    assert "without spaces, commas" in found[0][1]


def test_null_values_are_shown_as_null() -> None:
    found = errors("tasks:\n  - {id: a, type: shell, params: {argv: null}}\n")
    assert found == [("P2F104", "'argv' must be a list; got null")]
