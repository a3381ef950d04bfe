"""Canonical JSON and content digests: the bytes that golden files and hashes are made of."""

from __future__ import annotations

import hashlib
import json
from typing import Any

HASH_PREFIX = "sha256:"


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
"""One encoder for every call: `json.dumps` with options builds a new one each time."""


def compact_json(value: Any) -> str:
    """Canonical JSON of a value, without the trailing newline."""
    return _ENCODER.encode(value)


def canonical_json(value: Any) -> str:
    """Sorted keys, fixed separators, UTF-8 text, a trailing newline; NaN is an error.

    >>> canonical_json({"b": 1, "a": [True, None, "é"]})
    '{"a":[true,null,"é"],"b":1}\\n'
    """
    return _ENCODER.encode(value) + "\n"


def digest(text: str) -> str:
    """``sha256:`` + the hex digest of the UTF-8 text.

    >>> digest("")
    'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return HASH_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()
