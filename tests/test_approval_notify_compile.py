"""`notify.webhook` on an approval in the compiler: only http(s) URLs with a host, or a
`${{ params.x }}` expression (a chat webhook's URL holds a secret), each problem located; an
approval without `notify` keeps the graph (and hash) it had before `notify` existed."""

from __future__ import annotations

from typing import Any

import pytest

from plan2flow.compiler import PlanError, compile_plan
from plan2flow.compiler.validate.approval_rules import webhook_problem

HEAD = "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: t}\n"
POINTER = "/tasks/1/params/notify/webhook"


def _plan(notify: str, params: str = "") -> str:
    return (
        HEAD + params + "tasks:\n"
        "  - {id: build, type: noop}\n"
        f"  - {{id: review, type: approval, depends_on: [build], params: {{notify: {notify}}}}}\n"
        "  - {id: ship, type: noop, depends_on: [review]}\n"
    )


def _review(text: str) -> dict[str, Any]:
    document = compile_plan(text, "p.yaml", strict=True).graph.document
    task: dict[str, Any] = next(t for t in document["tasks"] if t["id"] == "review")
    return task


def _problems(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(PlanError) as caught:
        compile_plan(text, "p.yaml", strict=True)
    return [(d.code, d.pointer, d.message) for d in caught.value.diagnostics]


def test_a_webhook_is_recorded_with_its_defaults() -> None:
    review = _review(_plan("{webhook: 'https://chat.example/hooks/T1?x=1'}"))
    assert review["params"]["notify"] == {
        "attempts": 5,
        "timeout_seconds": 10.0,
        "webhook": "https://chat.example/hooks/T1?x=1",
    }


def test_without_notify_the_params_have_no_notify_key() -> None:
    text = HEAD + "tasks:\n  - {id: review, type: approval}\n"
    assert "notify" not in _review(text)["params"]


def test_a_webhook_may_come_from_a_parameter() -> None:
    params = "params: {hook: {type: string, default: 'https://chat.example/h'}}\n"
    review = _review(_plan("{webhook: '${{ params.hook }}', attempts: 2}", params))
    assert review["params"]["notify"]["webhook"] == "${{ params.hook }}"
    assert review["params"]["notify"]["attempts"] == 2


def test_a_webhook_from_an_undeclared_parameter_is_refused() -> None:
    [(code, pointer, message)] = _problems(_plan("{webhook: '${{ params.hook }}'}"))
    assert (code, pointer, message) == ("P2F209", POINTER, "unknown plan parameter 'hook'")


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        (
            "ftp://files.example/x",
            "P2F105",
            "must be an http:// or https:// URL, or a ${{ params.x }} expression that holds one",
        ),
        ("file:///etc/passwd", "P2F105", "must be an http:// or https:// URL"),
        ("https:///hooks", "P2F105", "cannot be posted to: it names no host"),
        ("https://chat.example:99999/h", "P2F105", "cannot be posted to: it is not a URL"),
        ("https://chat.example/a b", "P2F105", "cannot be posted to: it holds white space"),
    ],
)
def test_webhooks_that_cannot_be_posted_to_are_refused(url: str, code: str, message: str) -> None:
    [(found_code, pointer, found)] = _problems(_plan(f"{{webhook: '{url}'}}"))
    assert (found_code, pointer) == (code, POINTER)
    assert message in found


@pytest.mark.parametrize(
    ("notify", "pointer"),
    [
        ("{webhook: 'https://h.example', attempts: 0}", "/tasks/1/params/notify/attempts"),
        ("{webhook: 'https://h.example', attempts: 11}", "/tasks/1/params/notify/attempts"),
        (
            "{webhook: 'https://h.example', timeout_seconds: 0}",
            "/tasks/1/params/notify/timeout_seconds",
        ),
        ("{webhook: 'https://h.example', retries: 3}", "/tasks/1/params/notify/retries"),
        ("{attempts: 3}", POINTER),
    ],
)
def test_notify_settings_are_checked_where_they_are_written(notify: str, pointer: str) -> None:
    [(_, found, _)] = _problems(_plan(notify))
    assert found == pointer


def test_webhook_problem_of_a_templated_url_waits_for_the_run() -> None:
    assert webhook_problem("https://${{ params.host }}/h") is None
    assert webhook_problem("http://127.0.0.1:8080/hook") is None
    assert webhook_problem("mailto:x@example.com") == "only http:// and https:// URLs are posted to"
