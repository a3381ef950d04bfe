"""`notify.webhook` of an approval against a real HTTP server on 127.0.0.1, scripted to fail
and then succeed: the request is posted as JSON, connection errors, timeouts, 408, 429 and 5xx
are tried again (after `Retry-After` when one is given), other answers are final, the whole
delivery is bounded, and a webhook that stays down never fails or holds up the approval."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from approvals_support import RunningFlow, resume, wait_paused
from support import build_module, import_flow, plan_text

from plan2flow.events import process_bus
from plan2flow.flows import approval_notify
from plan2flow.flows.approval_notify import Delivery, deliver, notify_payload, post_request

Reply = tuple[int, dict[str, str], float]
"""Status, headers, and seconds to wait before answering."""


class Hook:
    """A webhook on 127.0.0.1 that answers each POST with the next scripted reply (the last
    one from then on) and records what it was sent, and when."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with hook.lock:
                    hook.received.append((time.monotonic(), json.loads(body)))
                    status, headers, delay = hook.replies[
                        min(len(hook.received), len(hook.replies)) - 1
                    ]
                time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T1?token=s3cret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(request: pytest.FixtureRequest) -> Iterator[Hook]:
    server = Hook(request.param)
    yield server
    server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


OK: Reply = (200, {}, 0.0)
PAYLOAD = {"plan": "p", "task": "review"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "hook", [[(503, {}, 0.0), (429, {"Retry-After": "1"}, 0.0), OK]], indirect=True
)
def test_failures_are_tried_again_until_the_webhook_takes_it(hook: Hook) -> None:
    delivery = post_request(hook.url, PAYLOAD, attempts=5, timeout=5, base_delay=0.05)
    assert (delivery.delivered, delivery.attempts, delivery.status) == (True, 3, 200)
    assert [body for _, body in hook.received] == [PAYLOAD] * 3
    times = [when for when, _ in hook.received]
    assert times[2] - times[1] >= 0.95  # Retry-After: 1 was honoured
    assert times[1] - times[0] < 0.9  # the backoff was the jittered 50 ms, not more


@pytest.mark.parametrize("hook", [[(400, {}, 0.0), OK]], indirect=True)
def test_a_refusal_is_final(hook: Hook) -> None:
    delivery = post_request(hook.url, PAYLOAD, attempts=5, timeout=5, base_delay=0.01)
    assert (delivery.delivered, delivery.attempts, delivery.error) == (False, 1, "HTTP 400")


@pytest.mark.parametrize("hook", [[(503, {"Retry-After": "3600"}, 0.0), OK]], indirect=True)
def test_a_retry_after_beyond_the_budget_ends_the_delivery_at_once(hook: Hook) -> None:
    started = time.monotonic()
    delivery = post_request(hook.url, PAYLOAD, attempts=5, timeout=5, budget=20)
    assert time.monotonic() - started < 5
    assert (delivery.delivered, delivery.attempts) == (False, 1)
    assert delivery.error == "HTTP 503; no time left to try again"


@pytest.mark.slow
@pytest.mark.parametrize("hook", [[(200, {}, 2.0), OK]], indirect=True)
def test_an_attempt_that_times_out_is_tried_again(hook: Hook) -> None:
    delivery = post_request(hook.url, PAYLOAD, attempts=3, timeout=0.5, base_delay=0.01)
    assert (delivery.delivered, delivery.attempts) == (True, 2)


def test_an_unreachable_webhook_uses_every_attempt_and_raises_nothing() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    delivery = post_request(url, PAYLOAD, attempts=3, timeout=2, base_delay=0.01)
    assert (delivery.delivered, delivery.attempts, delivery.status) == (False, 3, None)
    assert delivery.error.startswith("ConnectError")
    assert post_request("ftp://x/y", PAYLOAD, attempts=3, timeout=1).attempts == 0


def test_the_payload_says_what_is_asked_and_where_to_answer() -> None:
    request = {
        "plan": "release",
        "task": "review",
        "flow_run_id": "0f0e",
        "options": ["ship", "hold"],
        "deadline": "2026-01-01T00:00:00+00:00",
    }
    payload = notify_payload(request, "Ship **1.2**?", "http://ui/runs/flow-run/0f0e")
    assert payload["body"] == "Ship **1.2**?" and payload["url"] == "http://ui/runs/flow-run/0f0e"
    assert payload["text"] == (
        "Approval `review` of plan `release` is waiting for an answer (ship, hold) until "
        "2026-01-01T00:00:00+00:00. Answer it at http://ui/runs/flow-run/0f0e or: "
        "plan2flow approvals respond 0f0e --option ship --as NAME"
    )
    assert "Answer it at" not in notify_payload(request, "", None)["text"]


def _tasks(webhook: str) -> str:
    return (
        "  - {id: build, type: noop}\n"
        "  - id: review\n"
        "    type: approval\n"
        "    depends_on: [build]\n"
        "    params:\n"
        "      body: 'Ship **${{ params.version }}**?'\n"
        "      options: [ship, hold]\n"
        "      form: {ticket: {type: string, required: true}}\n"
        f"      notify: {{webhook: '{webhook}', attempts: 3, timeout_seconds: 5}}\n"
        "  - {id: ship, type: noop, depends_on: [review]}\n"
    )


PARAMS = "params: {version: {type: string, default: '1.2'}, hook: {type: string, default: ''}}\n"


def _start(tmp_path: Path, name: str, webhook: str, **params: Any) -> RunningFlow:
    module = build_module(tmp_path / "build", plan_text(name, _tasks(webhook), PARAMS))
    return RunningFlow(import_flow(module), **params)


@pytest.mark.slow
@pytest.mark.usefixtures("run_home")
@pytest.mark.parametrize("hook", [[(502, {}, 0.0), OK]], indirect=True)
def test_a_paused_approval_posts_its_request_to_the_webhook(hook: Hook, tmp_path: Path) -> None:
    running = _start(tmp_path, "notified", "${{ params.hook }}", hook=hook.url)
    wait_paused(running)
    deadline = time.monotonic() + 60
    while len(hook.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(hook.received) == 2, hook.received
    sent = hook.received[-1][1]
    assert sent == hook.received[0][1]
    assert (sent["plan"], sent["task"], sent["flow_run_id"]) == (
        "notified",
        "review",
        running.flow_run_id,
    )
    assert sent["body"] == "Ship **1.2**?"
    assert sent["options"] == ["ship", "hold"]
    assert sent["form"]["ticket"]["required"] is True
    assert sent["url"].endswith(f"/runs/flow-run/{running.flow_run_id}")
    resume(running.flow_run_id, {"option": "ship", "respondent": "al", "ticket": "T-1"})
    running.join()
    assert running.states()["ship"] == "Completed"


@pytest.mark.slow
@pytest.mark.usefixtures("run_home")
def test_a_webhook_that_stays_down_does_not_hold_up_or_fail_the_approval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLAN2FLOW_EVENTS_URL", raising=False)
    monkeypatch.delenv("PLAN2FLOW_EVENTS", raising=False)
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    subscription = process_bus().subscribe("plan2flow.*.hookdown.>")
    try:
        running = _start(tmp_path, "hookdown", url)
        wait_paused(running)
        seen: dict[str, Any] = {}
        while "approval.notify_failed" not in seen:
            event = subscription.get(timeout=60)
            assert event is not None, sorted(seen)
            seen[event.type.removeprefix("plan2flow.")] = event
        failed = seen["approval.notify_failed"]
        assert (failed.taskid, failed.data.host, failed.data.attempts) == ("review", "127.0.0.1", 3)
        assert failed.data.error.startswith("ConnectError")
        resume(running.flow_run_id, {"option": "hold", "respondent": "al", "ticket": "T-2"})
        running.join()
    finally:
        subscription.close()
    assert running.state.is_completed()
    assert running.states() == {"build": "Completed", "review": "Completed", "ship": "Completed"}


@pytest.mark.slow
@pytest.mark.parametrize("hook", [[(503, {}, 0.0), OK]], indirect=True)
def test_a_suspending_run_waits_for_the_post_to_end(hook: Hook) -> None:
    failures: list[Delivery] = []
    settings = {"attempts": 3, "timeout_seconds": 5}
    thread = deliver(hook.url, PAYLOAD, settings, failures.append, wait=True)
    assert not thread.is_alive()
    assert len(hook.received) == 2 and failures == []
    down = f"http://127.0.0.1:{_closed_port()}/hook"
    deliver(down, PAYLOAD, {"attempts": 2, "timeout_seconds": 1}, failures.append, wait=True)
    [failed] = failures
    assert (failed.delivered, failed.attempts) == (False, 2)


def test_a_bug_in_the_post_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Delivery:
        raise RuntimeError("bug")

    monkeypatch.setattr(approval_notify, "post_request", broken)
    failures: list[Delivery] = []
    deliver(
        "http://127.0.0.1:1/h",
        PAYLOAD,
        {"attempts": 1, "timeout_seconds": 1},
        failures.append,
        wait=True,
    )
    assert [(f.attempts, f.error) for f in failures] == [(0, "RuntimeError: bug")]


def test_urls_that_cannot_be_posted_to_are_not_tried() -> None:
    for url in ("", "ftp://x/y", "http://[::1"):
        delivery = post_request(url, PAYLOAD, attempts=3, timeout=1)
        assert (delivery.delivered, delivery.attempts) == (False, 0), url
    bad_host = post_request("http://exa_mple.invalid:x/", PAYLOAD, attempts=3, timeout=1)
    assert (bad_host.delivered, bad_host.attempts) == (False, 1)
    assert bad_host.error.startswith("not a valid URL")
