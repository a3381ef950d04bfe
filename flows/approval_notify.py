"""``notify.webhook`` of an approval: the request is posted as JSON to a URL (a chat's incoming
webhook) when it is made, so people learn that an answer is wanted.

A chat that is down must neither fail the approval nor hold up its pause: attempts are
bounded, and so is the whole delivery (:data:`BUDGET_SECONDS`). Connection errors, timeouts,
408, 429 and 5xx are tried again after an exponential backoff with full jitter, or after the
``Retry-After`` the server asks for when it is within the budget; other answers are final. A
delivery that fails is logged and announced (``plan2flow.approval.notify_failed``), never
raised. The URL may hold a secret: it is never logged, only its host.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

LOGGER = logging.getLogger("plan2flow.runtime")
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Answers worth asking again: the server was busy or failed, not the request."""
BASE_DELAY_SECONDS = 1.0
"""The first backoff's ceiling; it doubles at every attempt."""
MAX_DELAY_SECONDS = 30.0
"""No single wait is longer (``Retry-After`` included)."""
BUDGET_SECONDS = 120.0
"""The whole delivery, waits and attempts, ends within this: a pause is never held up longer."""


@dataclasses.dataclass(frozen=True)
class Delivery:
    """How posting the request went."""

    delivered: bool
    attempts: int
    status: int | None = None
    """The last HTTP status, ``None`` when no answer came."""
    error: str = ""
    """Why it was not delivered."""


def backoff(attempt: int, base: float, cap: float, draw: Callable[[], float]) -> float:
    """The wait before attempt ``attempt + 1``: full jitter, uniform below
    ``min(cap, base * 2 ** (attempt - 1))``, so many runs do not retry in step.

    >>> backoff(1, 1.0, 30.0, lambda: 0.5), backoff(3, 1.0, 30.0, lambda: 0.5)
    (0.5, 2.0)
    >>> backoff(10, 1.0, 30.0, lambda: 1.0)
    30.0
    """
    ceiling: float = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling * draw()


def retry_after(value: str | None, now: dt.datetime) -> float | None:
    """The seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP date), or
    ``None`` when it is absent or unreadable.

    >>> retry_after("3", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    3.0
    >>> retry_after("Thu, 01 Jan 2026 00:00:05 GMT", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    5.0
    >>> retry_after("soon", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) is None
    True
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def host_of(url: str) -> str:
    """What the logs say of a webhook: its host, never its path or query (they hold secrets)."""
    try:
        return urlsplit(url).hostname or "(no host)"
    except ValueError:
        return "(not a URL)"


def post_request(
    url: str,
    payload: Mapping[str, Any],
    *,
    attempts: int,
    timeout: float,
    base_delay: float = BASE_DELAY_SECONDS,
    budget: float = BUDGET_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> Delivery:
    """POST `payload` as JSON to `url` until a 2xx, a final answer, the last attempt or the
    budget; never raises for what the network or the server does."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        return Delivery(False, 0, None, "not an http:// or https:// URL")
    started = time.monotonic()
    status: int | None = None
    error = ""
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for attempt in range(1, attempts + 1):
            asked: float | None = None
            try:
                response = client.post(url, json=dict(payload))
            except (httpx.InvalidURL, ValueError) as failure:  # UnicodeError: a bad host
                return Delivery(False, attempt, None, f"not a valid URL: {failure}")
            except httpx.HTTPError as failure:
                status, error = None, f"{type(failure).__name__}: {failure}"
            else:
                status = response.status_code
                if response.is_success:
                    return Delivery(True, attempt, status)
                error = f"HTTP {status}"
                if status not in RETRY_STATUSES:
                    return Delivery(False, attempt, status, error)
                asked = retry_after(response.headers.get("retry-after"), dt.datetime.now(dt.UTC))
            if attempt == attempts:
                break
            wait = backoff(attempt, base_delay, MAX_DELAY_SECONDS, draw) if asked is None else asked
            left = budget - (time.monotonic() - started)
            if wait > min(MAX_DELAY_SECONDS, left - timeout):
                return Delivery(False, attempt, status, f"{error}; no time left to try again")
            sleep(wait)
    return Delivery(False, attempts, status, error)


def run_link(flow_run_id: str) -> str | None:
    """The run's page in the Prefect UI, when the UI's address is known."""
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    if not ui or flow_run_id.startswith("local-"):
        return None
    return f"{str(ui).rstrip('/')}/runs/flow-run/{flow_run_id}"


def notify_payload(request: Mapping[str, Any], body: str, link: str | None) -> dict[str, Any]:
    """What is posted: the request, its text, the run's page, and a one-line ``text`` that chat
    webhooks (Slack, Mattermost, Rocket.Chat) show as the message."""
    options = ", ".join(request["options"])
    text = (
        f"Approval `{request['task']}` of plan `{request['plan']}` is waiting for an answer "
        f"({options}) until {request['deadline']}."
    )
    if link:
        text += f" Answer it at {link}"
    text += (
        f" or: plan2flow approvals respond {request['flow_run_id']} "
        f"--option {request['options'][0]} --as NAME"
    )
    return {**request, "body": body, "url": link, "text": text}


def deliver(
    url: str,
    payload: Mapping[str, Any],
    settings: Mapping[str, Any],
    failed: Callable[[Delivery], None],
    *,
    wait: bool,
) -> threading.Thread:
    """Post in a thread, calling `failed` when it was not delivered. `wait` joins it (a
    suspended run's process ends at the suspend: the post must be done before); otherwise the
    pause starts at once and the post goes on beside it."""

    def send() -> None:
        try:
            outcome = post_request(
                url,
                payload,
                attempts=int(settings["attempts"]),
                timeout=float(settings["timeout_seconds"]),
            )
        except Exception as error:  # a bug here must not reach the approval
            LOGGER.exception("plan2flow: the approval's webhook post failed")
            outcome = Delivery(False, 0, None, f"{type(error).__name__}: {error}")
        if outcome.delivered:
            LOGGER.info("plan2flow: approval request posted to %s", host_of(url))
            return
        LOGGER.warning(
            "plan2flow: approval request not posted to %s after %d attempt(s): %s",
            host_of(url),
            outcome.attempts,
            outcome.error,
        )
        failed(outcome)

    thread = threading.Thread(target=send, name="plan2flow-approval-notify", daemon=True)
    thread.start()
    if wait:
        thread.join(BUDGET_SECONDS + float(settings["timeout_seconds"]))
    return thread
