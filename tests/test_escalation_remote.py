"""The remote tier against a real HTTP server on 127.0.0.1 that speaks the OpenAI wire format:
answers, retries and their delays (the delays asked for, not wall time), timeouts, validation
errors, structured output and its fallback, usage and its estimate, the budget, the key."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import socket
from typing import Any

import pytest
from openai_server import FakeOpenAI, Reply, Waits, error_body, fake_openai

from plan2flow.compiler.spec.escalation import Redaction, RemoteTier
from plan2flow.escalation import (
    BudgetExceeded,
    ChatClient,
    Completion,
    Gateway,
    HostDenied,
    ModelCallFailed,
)
from plan2flow.escalation.budget import Budget
from plan2flow.escalation.outbound import Outbound
from plan2flow.escalation.redaction import Vault

SCHEMA = {"type": "object", "properties": {"bodies": {"type": "object"}}}
MESSAGES = [("system", "You complete Python modules."), ("user", "Write add(a, b).")]


def client(server: FakeOpenAI, waits: Waits, **options: Any) -> ChatClient:
    values: dict[str, Any] = {"max_retries": 2, "max_tokens": 64, **options}
    return ChatClient(server.url, "small", sleep=waits, rng=random.Random(7), **values)


def outbound(server: FakeOpenAI) -> Outbound:
    return Gateway(Redaction(), ["127.0.0.1"]).outbound(server.url, MESSAGES)


def ask(
    server: FakeOpenAI, waits: Waits, budget: Budget | None = None, **options: Any
) -> Completion:
    chat = client(server, waits, **options)
    return chat.complete(
        outbound(server), temperature=0.2, budget=budget or Budget(0.0), schema=SCHEMA
    )


def test_a_good_answer_with_its_usage_and_cost() -> None:
    waits = Waits()
    with fake_openai([Reply(content='{"bodies": {}}')]) as server:
        tier = RemoteTier(base_url=server.url, model="small", api_key_env="P2F_TEST_KEY")
        chat = ChatClient.for_remote(
            tier.model_copy(update={"price_per_1k_tokens": 2.0}),
            {"P2F_TEST_KEY": "secret-key-value"},
            sleep=waits,
        )
        done = chat.complete(outbound(server), temperature=0.5, budget=Budget(10.0), schema=SCHEMA)
        (request,) = server.requests
    assert (done.content, done.model, done.attempts, done.delays) == (
        '{"bodies": {}}',
        "fake-model",
        1,
        (),
    )
    assert (done.prompt_tokens, done.completion_tokens, done.estimated) == (100, 50, False)
    assert done.cost_usd == pytest.approx(0.3) and done.structured
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer secret-key-value"
    body = request.json
    assert (body["model"], body["temperature"], body["stream"], body["max_tokens"]) == (
        "small",
        0.5,
        False,
        2048,
    )
    assert body["messages"][1] == {"role": "user", "content": "Write add(a, b)."}
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["response_format"]["json_schema"]["strict"] is True
    assert waits.asked == []


def test_without_api_key_env_no_authorization_header_is_sent() -> None:
    with fake_openai([Reply(content="x")]) as server:
        ask(server, Waits())
    assert "authorization" not in server.requests[0].headers


def test_the_key_comes_only_from_the_variable_named() -> None:
    tier = RemoteTier(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="P2F_NOT_SET")
    with pytest.raises(ModelCallFailed, match=r"P2F_NOT_SET .* is not set"):
        ChatClient.for_remote(tier, {"OPENAI_API_KEY": "sk-other"})


def test_429_with_retry_after_waits_what_the_server_asks() -> None:
    waits = Waits()
    script = [
        Reply(429, body=error_body("slow down"), headers={"Retry-After": "2"}),
        Reply(content="ok"),
    ]
    with fake_openai(script) as server:
        done = ask(server, waits)
    assert (len(server.requests), done.attempts, done.delays, waits.asked) == (2, 2, (2.0,), [2.0])


def test_retry_after_ms_wins_over_retry_after() -> None:
    waits = Waits()
    headers = {"retry-after-ms": "250", "Retry-After": "9"}
    with fake_openai([Reply(429, body="{}", headers=headers), Reply(content="ok")]) as server:
        ask(server, waits)
    assert waits.asked == [0.25]


def test_retry_after_as_an_http_date() -> None:
    waits = Waits()
    when = email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), usegmt=True
    )
    with fake_openai(
        [Reply(503, body="{}", headers={"Retry-After": when}), Reply(content="ok")]
    ) as server:
        ask(server, waits)
    (asked,) = waits.asked
    assert 25 < asked <= 30


def test_a_wait_past_the_cap_escalates_instead_of_sleeping() -> None:
    waits = Waits()
    with (
        fake_openai([Reply(429, body="{}", headers={"Retry-After": "600"})]) as server,
        pytest.raises(ModelCallFailed, match="wait 600 s, more than max_retry_after_s") as caught,
    ):
        ask(server, waits, max_retry_after_s=60.0)
    assert caught.value.escalate and caught.value.status == 429
    assert (len(server.requests), waits.asked) == (1, [])


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_retryable_statuses_back_off_exponentially_with_jitter(status: int) -> None:
    waits = Waits()
    script = [
        Reply(status, body=error_body("busy")),
        Reply(status, body=error_body("busy")),
        Reply(content="ok"),
    ]
    with fake_openai(script) as server:
        done = ask(server, waits)
    assert len(server.requests) == 3 and done.attempts == 3
    first, second = waits.asked
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0


def test_retries_are_bounded() -> None:
    waits = Waits()
    with (
        fake_openai([Reply(500, body=error_body("down"))]) as server,
        pytest.raises(ModelCallFailed, match=r"HTTP 500 .*after 3 attempt") as caught,
    ):
        ask(server, waits)
    assert (len(server.requests), caught.value.attempts, len(caught.value.delays)) == (3, 3, 2)


def test_x_should_retry_false_is_obeyed() -> None:
    with (
        fake_openai([Reply(503, body="{}", headers={"x-should-retry": "false"})]) as server,
        pytest.raises(ModelCallFailed),
    ):
        ask(server, Waits())
    assert len(server.requests) == 1


def test_other_4xx_and_redirects_are_not_retried() -> None:
    for reply in (
        Reply(401, body=error_body("bad key", "invalid_api_key")),
        Reply(307, body="", headers={"Location": "http://10.0.0.1/"}),
    ):
        with fake_openai([reply]) as server:
            chat = client(server, Waits())
            with pytest.raises(ModelCallFailed, match=f"HTTP {reply.status}"):
                chat.complete(outbound(server), temperature=0.2, budget=Budget(0.0))
        assert len(server.requests) == 1


LLAMA_CPP_500 = error_body(
    "1 validation error for CreateChatCompletionRequest response_format.type "
    "Input should be 'text' or 'json_object' [type=literal_error]",
    "internal_server_error",
)


def test_a_validation_5xx_is_not_retried_and_falls_back_to_prompt_and_validate() -> None:
    waits = Waits()
    with fake_openai([Reply(500, body=LLAMA_CPP_500), Reply(content='{"bodies": {}}')]) as server:
        chat = client(server, waits)
        done = chat.complete(outbound(server), temperature=0.2, budget=Budget(0.0), schema=SCHEMA)
        again = chat.complete(outbound(server), temperature=0.2, budget=Budget(0.0), schema=SCHEMA)
    assert waits.asked == [] and not done.structured and not again.structured
    assert ["response_format" in r.json for r in server.requests] == [True, False, False]


def test_a_validation_5xx_without_structured_output_fails_at_once() -> None:
    with (
        fake_openai([Reply(500, body=LLAMA_CPP_500)]) as server,
        pytest.raises(ModelCallFailed, match="HTTP 500"),
    ):
        client(server, Waits()).complete(outbound(server), temperature=0.2, budget=Budget(0.0))
    assert len(server.requests) == 1


def test_a_400_for_the_schema_falls_back_too() -> None:
    body = error_body("Either json_schema or grammar can be specified", "invalid_request_error")
    with fake_openai([Reply(400, body=body), Reply(content="x")]) as server:
        done = ask(server, Waits())
    assert not done.structured and len(server.requests) == 2


def test_a_response_slower_than_the_timeout_is_retried_then_fails() -> None:
    waits = Waits()
    with (
        fake_openai([Reply(content="late", delay_s=30)]) as server,
        pytest.raises(ModelCallFailed, match="ReadTimeout after 2 attempt") as caught,
    ):
        ask(server, waits, timeout_s=0.2, max_retries=1)
    assert len(server.requests) == 2 and caught.value.attempts == 2
    assert len(waits.asked) == 1 and 0.375 <= waits.asked[0] <= 0.5


def test_connection_errors_are_retried() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    waits = Waits()
    chat = ChatClient(f"http://127.0.0.1:{port}/v1", "m", max_retries=2, sleep=waits)
    gateway = Gateway(Redaction(), ["127.0.0.1"])
    with pytest.raises(ModelCallFailed, match="ConnectError after 3 attempt"):
        chat.complete(gateway.outbound(chat.base_url, MESSAGES), temperature=0.2, budget=Budget(0))
    assert len(waits.asked) == 2


def test_missing_usage_is_estimated_and_marked() -> None:
    with fake_openai([Reply(content="x" * 400, usage=None)]) as server:
        done = ask(server, Waits(), price_per_1k_tokens=1.0, budget=Budget(1.0))
    assert done.estimated and done.completion_tokens == 100 and done.prompt_tokens > 0
    assert done.cost_usd == pytest.approx((done.prompt_tokens + 100) / 1000)


def test_an_answer_that_is_no_chat_completion_fails() -> None:
    with (
        fake_openai([Reply(body='{"choices": []}')]) as server,
        pytest.raises(ModelCallFailed, match="not a chat completion"),
    ):
        ask(server, Waits())


def test_the_budget_is_checked_before_each_call_and_stops_calls() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 300}
    budget = Budget(0.5)
    with fake_openai([Reply(content="x", usage=usage)]) as server:
        chat = client(server, Waits(), price_per_1k_tokens=1.0, max_tokens=100)
        first = chat.complete(outbound(server), temperature=0.2, budget=budget)
        with pytest.raises(BudgetExceeded, match=r"0\.100000 of 0\.5 USD are left"):
            chat.complete(outbound(server), temperature=0.2, budget=budget)
    assert first.cost_usd == pytest.approx(0.4) and budget.spent_usd == pytest.approx(0.4)
    assert len(server.requests) == 1 and budget.calls == 1


def test_a_budget_too_small_for_one_call_sends_nothing() -> None:
    with fake_openai([Reply(content="x")]) as server, pytest.raises(BudgetExceeded):
        ask(server, Waits(), price_per_1k_tokens=1.0, budget=Budget(0.01))
    assert server.requests == []


def test_only_what_the_gateway_made_for_this_host_is_sent() -> None:
    with fake_openai([Reply(content="x")]) as server:
        chat = client(server, Waits())
        forged = Outbound("127.0.0.1", (("user", "hello"),), Vault(), redacted=True)
        with pytest.raises(HostDenied):
            chat.complete(forged, temperature=0.2, budget=Budget(0))
        elsewhere = Gateway(Redaction(), ["localhost"]).outbound("http://localhost:1/v1", MESSAGES)
        with pytest.raises(HostDenied):
            chat.complete(elsewhere, temperature=0.2, budget=Budget(0))
    assert server.requests == []
