"""SARIF 2.1.0, the format code-scanning services read to annotate pull requests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..errors import CODES, Diagnostic, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://plan2flow.dev/docs/planspec#diagnostic-codes"


def _region(line: int | None, column: int | None, end_column: int | None) -> dict[str, int]:
    region = {"startLine": line or 1, "startColumn": column or 1}
    if end_column:
        region["endColumn"] = end_column
    return region


def _location(file: str, region: dict[str, int], message: str | None = None) -> dict[str, Any]:
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": file}, "region": region}
    }
    if message:
        location["message"] = {"text": message}
    return location


def _result(item: Diagnostic) -> dict[str, Any]:
    text = item.message + (f" ({item.hint})" if item.hint else "")
    result: dict[str, Any] = {
        "ruleId": item.code,
        "level": "error" if item.severity is Severity.ERROR else "warning",
        "message": {"text": text},
        "locations": [_location(item.file, _region(item.line, item.column, item.end_column))],
        "properties": {"pointer": item.pointer},
    }
    if item.related:
        result["relatedLocations"] = [
            {"id": i, **_location(item.file, _region(r.line, r.column, None), r.message)}
            for i, r in enumerate(item.related)
        ]
    return result


def format_sarif(diagnostics: Sequence[Diagnostic], version: str) -> str:
    rules = [
        {
            "id": info.code,
            "name": info.title.title().replace(" ", "").replace("'", ""),
            "shortDescription": {"text": info.title},
            "helpUri": INFORMATION_URI,
            "defaultConfiguration": {
                "level": "error" if info.severity is Severity.ERROR else "warning"
            },
        }
        for info in sorted(CODES.values(), key=lambda i: i.code)
    ]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "plan2flow",
                        "semanticVersion": version,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "results": [_result(d) for d in diagnostics],
            }
        ],
    }
    return json.dumps(log, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
