"""What a secret looks like, shared by the logs' redaction and the escalation gateway.

Kept here, below ``plan2flow.escalation``, so that both the gateway (which replaces them in
prompts) and the log redaction (which masks them in every log line) use one definition.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping

SECRET_NAME = r"[A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|PWD|CREDENTIALS?|AUTH)[A-Z0-9_]*"
"""A variable whose name says it holds a secret (``OPENAI_API_KEY``, ``DB_PASSWORD``)."""
PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----"
)
ENV_LINE = re.compile(
    rf"(?m)^[ \t]*(?:export[ \t]+)?({SECRET_NAME})[ \t]*=[ \t]*(['\"]?)([^\s'\"#]{{4,}})\2"
)
API_KEYS = re.compile(
    r"(?<![\w-])(?:sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,})"
)
MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 6
"""Shorter values (``true``, ``1234``) would mask ordinary words: they are not remembered."""
_NAME = re.compile(rf"^{SECRET_NAME}$", re.IGNORECASE)
_INLINE_ASSIGNMENT = re.compile(
    rf"(?i)\b({SECRET_NAME})([ \t]*[=:][ \t]*)(['\"]?)([^\s'\",}}]{{4,}})"
)


def is_secret_name(name: str) -> bool:
    """``api_token``, ``DB_PASSWORD``: names whose values are never logged.

    >>> is_secret_name("OPENAI_API_KEY"), is_secret_name("db_password"), is_secret_name("who")
    (True, True, False)
    """
    return _NAME.match(name) is not None


def secret_values(values: Mapping[str, object]) -> set[str]:
    """The values of the secret-named entries (an environment, a run's parameters)."""
    return {
        str(value)
        for name, value in values.items()
        if is_secret_name(name) and value is not None and len(str(value)) >= MIN_SECRET_LENGTH
    }


class KnownSecrets:
    """The secret values this process has seen: its environment's, and its runs' parameters'."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        fresh = {v for v in values if len(v) >= MIN_SECRET_LENGTH}
        with self._lock:
            # Their JSON-escaped forms too: a log line is JSON by the time it is masked.
            escaped = {json.dumps(v)[1:-1] for v in fresh}
            self._values = self._values | fresh | escaped
            self._longest_first = sorted(self._values, key=len, reverse=True)

    def mask(self, text: str) -> str:
        """`text` with every known value and everything shaped like a secret replaced.

        >>> KnownSecrets(["hunter2-secret"]).mask("pw=hunter2-secret key sk-abcdefghijklmnop1234")
        'pw=[REDACTED] key [REDACTED]'
        """
        for value in self._longest_first if self._values else ():
            if value in text:
                text = text.replace(value, MASK)
        text = PRIVATE_KEY.sub(MASK, text)
        text = API_KEYS.sub(MASK, text)
        return _INLINE_ASSIGNMENT.sub(lambda m: f"{m[1]}{m[2]}{m[3]}{MASK}", text)


_PROCESS: KnownSecrets | None = None
_PROCESS_LOCK = threading.Lock()


def process_secrets() -> KnownSecrets:
    """This process's known secrets, starting with its environment's secret-named values."""
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None:
            _PROCESS = KnownSecrets(secret_values(dict(os.environ)))
        return _PROCESS
