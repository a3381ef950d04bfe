"""When to retry a chat-completions call and how long to wait: pure functions of a response.

As openai-python does: connection errors, 408, 409, 429 and 5xx are retried, ``x-should-retry``
overrides; the wait is the server's (``retry-after-ms``, then ``retry-after`` in seconds or as an
HTTP date) when it gives one, else ``min(0.5 · 2^n, 8)`` seconds less up to 25 % of jitter. A 5xx
whose body is a validation error is the server refusing the request (llama-cpp-python answers a
`json_schema` response format with 500), so retrying it only spends time.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import random
import re
from collections.abc import Mapping

RETRYABLE_STATUSES = frozenset({408, 409, 429})
INITIAL_DELAY_S = 0.5
MAX_BACKOFF_S = 8.0

_VALIDATION = re.compile(
    r"validation error|literal_error|input should be|field required|json_schema"
    r"|response_format|grammar",
    re.IGNORECASE,
)
_VALIDATION_TYPES = frozenset(
    {"invalid_request_error", "validation_error", "invalid_request", "bad_request"}
)


def is_validation_error(body: str) -> bool:
    """Whether an error body says the request itself is invalid.

    >>> is_validation_error('{"error": {"message": "Input should be \\'text\\'", "type": "x"}}')
    True
    >>> is_validation_error('{"error": {"message": "overloaded"}}')
    False
    """
    try:
        data = json.loads(body)
    except ValueError:
        return bool(_VALIDATION.search(body[:2000]))
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        if str(error.get("type", "")).lower() in _VALIDATION_TYPES:
            return True
        text = json.dumps(error.get("message", error.get("detail", "")), ensure_ascii=False)
    else:
        text = json.dumps(error, ensure_ascii=False)
    return bool(_VALIDATION.search(text[:2000]))


def should_retry(status: int, headers: Mapping[str, str], body: str) -> bool:
    """Whether a response with this status is worth another attempt."""
    override = headers.get("x-should-retry", "").lower()
    if override in {"true", "false"}:
        return override == "true"
    if status in RETRYABLE_STATUSES:
        return True
    return status >= 500 and not is_validation_error(body)


def server_delay(headers: Mapping[str, str], now: dt.datetime | None = None) -> float | None:
    """The wait the server asks for, in seconds, or None when it asks for none (or for a
    non-positive one).

    >>> server_delay({"retry-after-ms": "250"}), server_delay({"retry-after": "3"})
    (0.25, 3.0)
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = 0.0
        if value > 0:
            return value
    after = headers.get("retry-after")
    if after is None:
        return None
    try:
        value = float(after)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(after)
        except (TypeError, ValueError):
            return None
        value = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return value if value > 0 else None


def backoff(retry: int, rng: random.Random) -> float:
    """The wait before retry number ``retry`` (0 for the first) when the server names none.

    >>> backoff(0, random.Random(1)) <= 0.5 and backoff(9, random.Random(1)) <= 8.0
    True
    """
    base = min(INITIAL_DELAY_S * 2.0**retry, MAX_BACKOFF_S)
    return base * (1 - 0.25 * rng.random())
