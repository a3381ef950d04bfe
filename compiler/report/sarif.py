"""SARIF 2.1.0, the format code-scanning services read to annotate pull requests.

Locations are URIs relative to the directory plan2flow runs in (``uriBaseId: %SRCROOT%``) and
percent-encoded, as RFC 3986 requires: code scanning matches them against repository paths, and a
path with a space or a non-ASCII letter is not a URI as written. Every rule carries its meaning,
its fix and a link to its row of the code table.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Sequence
from pathlib import PurePath, PurePosixPath
from typing import Any
from urllib.parse import quote

from ..errors import CODES, CodeInfo, Diagnostic, Severity
from .bounds import elide, elide_pointer
from .rules import DOCS, RULE_HELP

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = f"{DOCS}#diagnostic-codes"
SRCROOT = "%SRCROOT%"


def help_uri(code: str) -> str:
    """The code's row in the code table of docs/planspec.md (each row has an anchor).

    >>> help_uri("P2F102")
    'https://plan2flow.dev/docs/planspec#p2f102'
    """
    return f"{DOCS}#{code.lower()}"


def artifact_location(file: str, root: str) -> dict[str, str]:
    """A file as SARIF wants it: relative to `root` with ``uriBaseId``, percent-encoded; a file
    outside `root` as an absolute ``file:`` URI.

    >>> artifact_location("plans/my plan é.yaml", "/repo")
    {'uri': 'plans/my%20plan%20%C3%A9.yaml', 'uriBaseId': '%SRCROOT%'}
    >>> artifact_location("/repo/plans/a.yaml", "/repo")
    {'uri': 'plans/a.yaml', 'uriBaseId': '%SRCROOT%'}
    >>> artifact_location("/elsewhere/a#1.yaml", "/repo")
    {'uri': 'file:///elsewhere/a%231.yaml'}
    """
    path = PurePath(file)
    if path.is_absolute():
        relative = os.path.relpath(path, root)
    else:
        relative = posixpath.normpath(path.as_posix())
    if relative == ".." or relative.startswith(("../", "..\\")):
        absolute = PurePosixPath(os.path.normpath(os.path.join(root, file))).as_posix()
        return {"uri": "file://" + quote(absolute)}
    return {"uri": quote(PurePath(relative).as_posix()), "uriBaseId": SRCROOT}


def _region(line: int | None, column: int | None, end_column: int | None) -> dict[str, int]:
    region = {"startLine": line or 1, "startColumn": column or 1}
    if end_column:
        region["endColumn"] = end_column
    return region


def _location(
    artifact: dict[str, str], region: dict[str, int], message: str | None = None
) -> dict[str, Any]:
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": artifact, "region": region}
    }
    if message:
        location["message"] = {"text": elide(message)}
    return location


def _result(item: Diagnostic, root: str) -> dict[str, Any]:
    text = elide(item.message) + (f" ({elide(item.hint)})" if item.hint else "")
    artifact = artifact_location(item.file, root)
    result: dict[str, Any] = {
        "ruleId": item.code,
        "level": "error" if item.severity is Severity.ERROR else "warning",
        "message": {"text": text},
        "locations": [_location(artifact, _region(item.line, item.column, item.end_column))],
        "properties": {"pointer": elide_pointer(item.pointer)},
    }
    if item.related:
        result["relatedLocations"] = [
            {"id": i, **_location(artifact, _region(r.line, r.column, None), r.message)}
            for i, r in enumerate(item.related)
        ]
    return result


def rule(info: CodeInfo) -> dict[str, Any]:
    """One reporting descriptor: what the code means, how to fix it, where it is documented."""
    meaning, fix = RULE_HELP.get(info.code, (info.title[:1].upper() + info.title[1:] + ".", ""))
    uri = help_uri(info.code)
    return {
        "id": info.code,
        "name": info.title.title().replace(" ", "").replace("'", ""),
        "shortDescription": {"text": info.title},
        "fullDescription": {"text": meaning},
        "help": {
            "text": f"{fix} See {uri}".lstrip(),
            "markdown": f"{fix} See [{info.code}]({uri}).".lstrip(),
        },
        "helpUri": uri,
        "defaultConfiguration": {
            "level": "error" if info.severity is Severity.ERROR else "warning"
        },
    }


def format_sarif(diagnostics: Sequence[Diagnostic], version: str, root: str | None = None) -> str:
    """One SARIF log; paths relative to `root`, the working directory unless given."""
    base = os.getcwd() if root is None else root
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
                        "rules": [
                            rule(info) for info in sorted(CODES.values(), key=lambda i: i.code)
                        ],
                    }
                },
                "results": [_result(d, base) for d in diagnostics],
            }
        ],
    }
    return json.dumps(log, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
