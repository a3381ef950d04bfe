"""SARIF output against the official SARIF 2.1.0 schema: URIs, rules' help, every example."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.compiler import CODES, Diagnostic, Severity
from plan2flow.compiler.errors import Related
from plan2flow.compiler.report import format_sarif
from plan2flow.compiler.report.rules import RULE_HELP

ROOT = Path(__file__).parents[1]
SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text("utf-8"))
PLANSPEC = (ROOT / "docs" / "planspec.md").read_text(encoding="utf-8")
INVALID = sorted((ROOT / "examples" / "plans" / "invalid").glob("*.yaml"))
# RFC 3986 URI-reference characters; jsonschema checks the "uri" format only with rfc3987.
URI = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-F]{2})+$")


def validate_log(text: str) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(text)
    errors = sorted(
        Draft4Validator(SCHEMA, format_checker=Draft4Validator.FORMAT_CHECKER).iter_errors(log),
        key=str,
    )
    assert [error.message for error in errors] == []
    for result in log["runs"][0]["results"]:
        for location in [*result["locations"], *result.get("relatedLocations", [])]:
            assert URI.match(location["physicalLocation"]["artifactLocation"]["uri"])
    return log


def finding(file: str, **fields: Any) -> Diagnostic:
    return Diagnostic(
        "P2F202", "task 'b' depends on unknown task 'x'", "/tasks/1/depends_on/0",
        hint="did you mean 'a'?", file=file, line=3, column=5, end_column=6, **fields,
    )  # fmt: skip


def locations(text: str) -> list[dict[str, str]]:
    results = json.loads(text)["runs"][0]["results"]
    return [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in results]


def test_uris_are_relative_percent_encoded_and_based() -> None:
    text = format_sarif([finding("plans/my plan é.yaml")], "1.0", root="/repo")
    validate_log(text)
    assert locations(text) == [{"uri": "plans/my%20plan%20%C3%A9.yaml", "uriBaseId": "%SRCROOT%"}]


def test_an_absolute_path_under_the_root_becomes_relative() -> None:
    text = format_sarif([finding("/repo/plans/a b.yaml")], "1.0", root="/repo")
    assert locations(text) == [{"uri": "plans/a%20b.yaml", "uriBaseId": "%SRCROOT%"}]
    assert locations(format_sarif([finding("./plans/../a.yaml")], "1.0", root="/repo")) == [
        {"uri": "a.yaml", "uriBaseId": "%SRCROOT%"}
    ]


def test_a_path_outside_the_root_is_an_absolute_file_uri() -> None:
    text = format_sarif([finding("/elsewhere/a #1.yaml")], "1.0", root="/repo")
    validate_log(text)
    assert locations(text) == [{"uri": "file:///elsewhere/a%20%231.yaml"}]
    relative = format_sarif([finding("../up.yaml")], "1.0", root="/repo/sub")
    assert locations(relative) == [{"uri": "file:///repo/up.yaml"}]


def test_the_root_defaults_to_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "examples")
    text = format_sarif([finding(str(ROOT / "examples" / "plans" / "hello.yaml"))], "1.0")
    assert locations(text) == [{"uri": "plans/hello.yaml", "uriBaseId": "%SRCROOT%"}]


def test_every_rule_has_a_description_and_help_linking_to_its_docs() -> None:
    log = validate_log(format_sarif([], "1.0", root="/repo"))
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == sorted(CODES)
    for rule in rules:
        anchor = rule["id"].lower()
        assert rule["helpUri"] == f"https://plan2flow.dev/docs/planspec#{anchor}"
        assert f'<a id="{anchor}"></a>{rule["id"]} |' in PLANSPEC, "the link has its anchor"
        assert rule["fullDescription"]["text"] == RULE_HELP[rule["id"]][0]
        assert rule["help"]["text"].endswith(f"See {rule['helpUri']}")
        assert f"]({rule['helpUri']})" in rule["help"]["markdown"]
        assert RULE_HELP[rule["id"]][1] in rule["help"]["text"]


def test_rule_help_is_the_code_table_of_the_docs() -> None:
    table = {}
    for line in PLANSPEC.splitlines():
        row = re.match(r'^\| <a id="p2f\d{3}"></a>(P2F\d{3}) \| \w+ \| (.*) \| (.*) \|$', line)
        if row:
            code, meaning, fix = row.groups()
            table[code] = (meaning.replace("`", ""), fix.replace("`", ""))
    assert set(CODES) <= set(table)
    assert {code: RULE_HELP[code] for code in table} == table


def test_a_code_without_help_still_gets_a_description(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(RULE_HELP, "P2F001")
    log = validate_log(format_sarif([], "1.0", root="/repo"))
    rule = log["runs"][0]["tool"]["driver"]["rules"][0]
    assert rule["fullDescription"] == {"text": "File cannot be read."}
    assert rule["help"]["text"] == "See https://plan2flow.dev/docs/planspec#p2f001"


def test_long_values_are_elided_in_sarif() -> None:
    key = "k" * 1_000_000
    item = Diagnostic(
        "P2F102", f"unknown field '{key}'", f"/tasks/0/{key}", hint=f"did you mean '{key}'?",
        file="p.yaml", line=7, column=7, related=(Related("/x", f"first '{key}'", 1, 1),),
        severity=Severity.ERROR,
    )  # fmt: skip
    text = format_sarif([item], "1.0", root="/repo")
    assert len(text) < 40_000
    (result,) = validate_log(text)["runs"][0]["results"]
    assert result["message"]["text"].startswith("unknown field 'kkk")
    assert "…[999942 characters]…" in result["message"]["text"]
    assert len(result["properties"]["pointer"]) < 120
    assert len(result["relatedLocations"][0]["message"]["text"]) < 120


@pytest.mark.parametrize("plan", INVALID, ids=lambda p: p.stem)
def test_every_invalid_example_gives_a_schema_valid_log(plan: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "-f", "sarif", str(plan.relative_to(ROOT))])
    assert result.exit_code in (0, 1, 2)
    log = validate_log(result.stdout)
    for found in log["runs"][0]["results"]:
        location = found["locations"][0]["physicalLocation"]["artifactLocation"]
        assert location == {
            "uri": f"examples/plans/invalid/{plan.name}",
            "uriBaseId": "%SRCROOT%",
        }
