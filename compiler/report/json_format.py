"""Diagnostics as JSON, for scripts and editors."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from ..errors import Diagnostic
from .bounds import elide, elide_pointer


def diagnostic_dict(item: Diagnostic) -> dict[str, Any]:
    """One diagnostic as JSON, its long values cut as in every format."""
    data = dataclasses.asdict(item)
    data["severity"] = item.severity.value
    data["message"] = elide(item.message)
    data["hint"] = None if item.hint is None else elide(item.hint)
    data["pointer"] = elide_pointer(item.pointer)
    for related in data["related"]:
        related["message"] = elide(related["message"])
        related["pointer"] = elide_pointer(related["pointer"])
    del data["on_key"]
    return data


def format_json(results: Sequence[dict[str, Any]]) -> str:
    """`results`: one entry per plan with `file`, `ok`, `diagnostics` and, when compiled, `hash`."""
    entries = [
        {**entry, "diagnostics": [diagnostic_dict(d) for d in entry["diagnostics"]]}
        for entry in results
    ]
    return json.dumps({"plans": entries}, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
