"""`escalation:` in a plan: validated and located (P2F110, P2F105), merged with `defaults`,
recorded in the TaskGraph only where declared, hashed, and shown by `plan2flow diff`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.compiler import PlanError, compile_plan, diff_graphs
from plan2flow.compiler.spec.escalation import EscalationPolicy, merge_policies, policy_record
from plan2flow.compiler.validate.escalation_rules import host_of

HEAD = "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: esc}\n"
REMOTE = "{remote: {base_url: 'https://api.example.com/v1', model: m}}"
COMPONENT = "components:\n  - name: greeter\n"


def plan(defaults: str = "", component: str = "", tasks: str = "") -> str:
    text = HEAD
    if defaults:
        text += f"defaults:\n  escalation: {defaults}\n"
    text += COMPONENT + (f"    escalation: {component}\n" if component else "")
    if tasks:
        text += f"tasks:\n{tasks}"
    return text


def compiled(text: str) -> dict[str, Any]:
    return compile_plan(text, "plan.yaml").graph.document


def entry(document: dict[str, Any], task_id: str) -> dict[str, Any]:
    return next(task for task in document["tasks"] if task["id"] == task_id)


def problems(text: str, code: str = "P2F110") -> list[tuple[str, str, str | None]]:
    with pytest.raises(PlanError) as caught:
        compile_plan(text, "plan.yaml")
    return [(d.pointer, d.message, d.hint) for d in caught.value.diagnostics if d.code == code]


def test_a_plan_without_escalation_records_none() -> None:
    document = compiled(plan())
    assert all("escalation" not in task for task in document["tasks"])


def test_defaults_apply_to_generate_code_tasks_only_and_every_default_is_recorded() -> None:
    document = compiled(plan(defaults="{threshold: 0.9}"))
    record = entry(document, "greeter.generate_code")["escalation"]
    assert record == policy_record(EscalationPolicy(threshold=0.9))
    assert record["tiers"] == [
        {"local": {"base_url": None, "model": None, "timeout_s": 60.0}},
        {"human": {"mode": "pause", "respondents": [], "timeout_s": 86400.0}},
    ]
    assert "escalation" not in entry(document, "greeter.validate")
    assert "escalation" not in entry(document, "greeter.test")


def test_a_component_refines_the_defaults_field_by_field() -> None:
    defaults = f"{{threshold: 0.9, tiers: [{REMOTE}], allowed_hosts: [api.example.com]}}"
    record = entry(compiled(plan(defaults, "{variants: 3}")), "greeter.generate_code")
    policy = record["escalation"]
    assert (policy["threshold"], policy["variants"], policy["allowed_hosts"]) == (
        0.9,
        3,
        ["api.example.com"],
    )
    assert policy["tiers"][0]["remote"]["model"] == "m"


def test_a_written_generate_code_task_takes_its_own_policy() -> None:
    task = "  - {id: gen, type: generate_code, outputs: [code], escalation: {threshold: 0.5}}\n"
    document = compiled(HEAD + f"tasks:\n{task}")
    assert entry(document, "gen")["escalation"]["threshold"] == 0.5


def test_escalation_on_another_task_type_is_an_unknown_field() -> None:
    task = "  - {id: a, type: noop, escalation: {threshold: 0.5}}\n"
    assert problems(HEAD + f"tasks:\n{task}", "P2F102") == [
        (
            "/tasks/0/escalation",
            "unknown field 'escalation'",
            "only generate_code tasks, components and defaults escalate",
        )
    ]


def test_integers_and_floats_give_the_same_bytes() -> None:
    first = compile_plan(plan(defaults="{budget_usd: 1, threshold: 1}"), "p.yaml").graph
    second = compile_plan(plan(defaults="{budget_usd: 1.0, threshold: 1.0}"), "p.yaml").graph
    assert first.text == second.text


def test_the_policy_is_part_of_the_task_hash_and_of_the_diff() -> None:
    base = compiled(plan(defaults="{threshold: 0.75}"))
    head = compiled(plan(defaults="{threshold: 0.8}"))
    generate = "greeter.generate_code"
    assert entry(base, generate)["hash"] != entry(head, generate)["hash"]
    diff = diff_graphs(base, head)
    (change,) = [c for c in diff.changed if c.id == generate]
    assert [(c.path, c.old, c.new) for c in change.changes] == [("escalation.threshold", 0.75, 0.8)]
    assert set(diff.impacted) == {"greeter.validate", "greeter.test"}


def test_plan2flow_diff_shows_a_policy_added(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(plan(), "utf-8")
    (tmp_path / "head.yaml").write_text(plan(defaults="{variants: 3}"), "utf-8")
    result = CliRunner().invoke(
        app, ["diff", str(tmp_path / "base.yaml"), str(tmp_path / "head.yaml")]
    )
    assert result.exit_code == 1, result.output  # 1: the graphs differ
    assert "greeter.generate_code" in result.stdout and "escalation" in result.stdout


@pytest.mark.parametrize(
    ("defaults", "pointer", "message"),
    [
        (
            f"{{tiers: [{REMOTE}]}}",
            "/defaults/escalation/tiers/0/remote/base_url",
            "calls 'api.example.com', which is not in allowed_hosts",
        ),
        (
            "{tiers: [{local: {base_url: 'http://example.com:8080/v1'}}]}",
            "/defaults/escalation/tiers/0/local/base_url",
            "'example.com' is not 127.0.0.1, localhost or ::1",
        ),
        (
            "{tiers: [{human: {}}, {local: {}}]}",
            "/defaults/escalation/tiers/1",
            "tier 1 is 'local' after 'human'",
        ),
        (
            "{tiers: [{local: {}}, {local: {}}]}",
            "/defaults/escalation/tiers/1",
            "the chain has a second 'local' tier",
        ),
        (
            "{tiers: [{human: {}}, {human: {}}]}",
            "/defaults/escalation/tiers/1",
            "the chain has a second 'human' tier",
        ),
        (
            f"{{variants: 1, tiers: [{REMOTE}], allowed_hosts: [api.example.com]}}",
            "/defaults/escalation/variants",
            "needs at least 2 competing variants; variants is 1",
        ),
        (
            "{tiers: [{remote: {base_url: 'https://api.example.com/v1', model: m, "
            "price_per_1k_tokens: 0.5}}], allowed_hosts: [api.example.com]}",
            "/defaults/escalation/tiers/0/remote/price_per_1k_tokens",
            "costs 0.5 USD per 1,000 tokens, but budget_usd is 0",
        ),
        (
            "{weights: {tests: 0, parses: 0, types: 0, lint: 0, agreement: 0}}",
            "/defaults/escalation/weights",
            "every weight is 0",
        ),
        (
            "{redact: {patterns: [{name: CUST, regex: '('}]}}",
            "/defaults/escalation/redact/patterns/0/regex",
            "pattern 'CUST' is not a regular expression",
        ),
        (
            "{redact: {patterns: [{name: CUST, regex: 'a?'}]}}",
            "/defaults/escalation/redact/patterns/0/regex",
            "pattern 'CUST' matches empty text",
        ),
        (
            "{redact: {patterns: [{name: SECRET, regex: 'x+'}]}}",
            "/defaults/escalation/redact/patterns/0/name",
            "pattern name 'SECRET' is a token name of the gateway itself",
        ),
    ],
)
def test_each_rule_points_at_the_field(defaults: str, pointer: str, message: str) -> None:
    ((where, text, hint),) = problems(plan(defaults=defaults))
    assert where == pointer and message in text and hint


def test_a_problem_is_reported_where_the_field_is_written() -> None:
    defaults = f"{{tiers: [{REMOTE}], allowed_hosts: [api.example.com]}}"
    found = problems(plan(defaults, "{variants: 1}"))
    assert [pointer for pointer, _, _ in found] == ["/components/0/escalation/variants"]
    # The component inherits a bad field of the defaults: reported once, in the defaults.
    found = problems(plan(f"{{tiers: [{REMOTE}]}}", "{threshold: 0.5}"))
    assert [pointer for pointer, _, _ in found] == ["/defaults/escalation/tiers/0/remote/base_url"]


def test_a_task_writing_its_own_tiers_is_checked_there() -> None:
    policy = f"{{tiers: [{REMOTE}]}}"
    task = f"  - {{id: gen, type: generate_code, outputs: [code], escalation: {policy}}}\n"
    ((pointer, _, hint),) = problems(HEAD + f"tasks:\n{task}")
    assert pointer == "/tasks/0/escalation/tiers/0/remote/base_url"
    assert hint == "add 'api.example.com' to escalation.allowed_hosts"


def test_loopback_local_tiers_and_listed_hosts_pass() -> None:
    defaults = (
        "{tiers: [{local: {base_url: 'http://[::1]:8080/v1', model: tiny}}, "
        "{remote: {base_url: 'https://API.Example.com:8443/v1', model: m, "
        "price_per_1k_tokens: 0.002}}, {remote: {base_url: 'http://10.1.2.3/v1', model: n}}, "
        "{human: {mode: suspend}}], allowed_hosts: [api.example.com, '10.1.2.3'], "
        "budget_usd: 0.5, redact: {patterns: [{name: CUSTOMER_ID, regex: 'CUST-[0-9]{6}'}]}}"
    )
    record = entry(compiled(plan(defaults)), "greeter.generate_code")["escalation"]
    assert [next(iter(tier)) for tier in record["tiers"]] == ["local", "remote", "remote", "human"]


@pytest.mark.parametrize(
    ("defaults", "pointer", "message"),
    [
        ("{tiers: [{local: {}, human: {}}]}", "/defaults/escalation/tiers/0", "exactly one"),
        ("{tiers: [{}]}", "/defaults/escalation/tiers/0", "exactly one"),
        ("{threshold: 1.5}", "/defaults/escalation/threshold", "less than or equal to 1"),
        ("{tiers: []}", "/defaults/escalation/tiers", "at least 1 item"),
        (
            "{tiers: [{remote: {base_url: 'ftp://x/v1', model: m}}]}",
            "/defaults/escalation/tiers/0/remote/base_url",
            "an http(s) URL",
        ),
        (
            "{tiers: [{remote: {base_url: 'https://x/v1', model: m, api_key_env: 'my key'}}]}",
            "/defaults/escalation/tiers/0/remote/api_key_env",
            "an environment variable name",
        ),
        ("{redact: {secrets: keep}}", "/defaults/escalation/redact/secrets", "'mask'"),
        ("{allowed_hosts: ['https://x']}", "/defaults/escalation/allowed_hosts/0", "host name"),
    ],
)
def test_schema_errors_are_located(defaults: str, pointer: str, message: str) -> None:
    ((where, text, _),) = problems(plan(defaults=defaults), "P2F105")
    assert where == pointer and message in text


def test_an_unknown_field_of_a_tier_gets_a_suggestion() -> None:
    text = plan(defaults="{tiers: [{remote: {base_url: 'https://x/v1', modle: m}}]}")
    with pytest.raises(PlanError) as caught:
        compile_plan(text, "plan.yaml")
    hints = {d.code: d.hint for d in caught.value.diagnostics}
    assert hints["P2F102"] == "did you mean 'model'?"


def test_merge_keeps_whichever_side_exists() -> None:
    policy = EscalationPolicy(threshold=0.5)
    assert merge_policies(None, policy) is policy
    assert merge_policies(policy, None) is policy
    assert merge_policies(None, None) is None


def test_host_of_lowercases_and_unbrackets() -> None:
    assert host_of("http://LOCALHOST:1/v1") == "localhost"
    assert host_of("http://[::1]/v1") == "::1"
