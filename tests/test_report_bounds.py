"""A diagnostic costs a few hundred characters in every format, whatever the plan wrote.

Before: a 40 MB line printed 84 MB of stderr for one P2F102, and a 100,000-digit integer was
repeated whole in its message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.compiler import Diagnostic
from plan2flow.compiler.errors import Related
from plan2flow.compiler.report import format_human, format_json
from plan2flow.compiler.report.bounds import MAX_TEXT, WINDOW, cut, elide, elide_pointer, window

KEY = "k" * 1_000_000
LINE = "    ? " + KEY


def long_key() -> Diagnostic:
    return Diagnostic(
        "P2F102", f"unknown field '{KEY}'", f"/tasks/0/{KEY}", hint=f"did you mean '{KEY}'?",
        file="p.yaml", line=7, column=7, end_column=7 + len(KEY),
        related=(Related("/tasks/0", f"task '{KEY}'", 5, 5),),
    )  # fmt: skip


@pytest.fixture
def hostile_plan(tmp_path: Path) -> Path:
    plan = tmp_path / "long.yaml"
    plan.write_text(
        "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: a}\ntasks:\n"
        f"  - id: a\n    type: noop\n{LINE}\n    : 1\n"
        f"  - {{id: b, type: noop, retries: {'9' * 100_000}}}\n",
        encoding="utf-8",
    )
    return plan


def test_human_shows_a_window_of_the_line_and_elides_values() -> None:
    text = format_human([long_key()], lambda _file, _line: LINE)
    assert len(text) < 2_000
    header, _, source, caret, at, hint, note = text.splitlines()
    assert header.startswith("p.yaml:7:7: P2F102 error: unknown field 'kkkk")
    assert header.endswith("…[999942 characters]…" + "k" * 29 + "'")
    assert source == " 7 | " + LINE[:WINDOW] + "…"
    assert caret == "   | " + " " * 6 + "^" * (WINDOW - 6)
    assert len(at) < 100 and at.startswith("   = at /tasks/0/kkk")
    assert len(hint) < 140 and len(note) < 140


def test_human_window_follows_a_column_far_into_the_line() -> None:
    line = "x" * 5_000 + "HERE" + "y" * 5_000
    item = Diagnostic("P2F105", "bad", "/a", file="p.yaml", line=1, column=5_001, end_column=5_005)
    _, _, source, caret, _ = format_human([item], lambda _file, _line: line).splitlines()
    assert source.startswith(" 1 | …x") and source.endswith("y…")
    start = caret.index("^")
    assert source[start : start + 4] == "HERE" and caret[start:] == "^^^^"


def test_json_elides_messages_hints_notes_and_pointer_segments() -> None:
    text = format_json([{"file": "p.yaml", "ok": False, "diagnostics": [long_key()]}])
    assert len(text) < 3_000
    (item,) = json.loads(text)["plans"][0]["diagnostics"]
    assert (
        item["message"].startswith("unknown field 'kkk")
        and "…[999942 characters]…" in item["message"]
    )
    assert item["pointer"].startswith("/tasks/0/kkk") and len(item["pointer"]) < 100
    assert len(item["hint"]) < 120 and len(item["related"][0]["message"]) < 120
    assert item["line"] == 7 and item["column"] == 7


def test_short_text_is_left_alone() -> None:
    assert elide("unknown field 'nmae'") == "unknown field 'nmae'"
    assert elide_pointer("/tasks/0/depends_on/1") == "/tasks/0/depends_on/1"
    assert window("- {id: a}", 3, 2) == ("- {id: a}", 3, 2)
    assert cut("x" * 30, 10).count("…") == 2
    assert len(elide(" ".join(["word"] * 1000))) <= MAX_TEXT


@pytest.mark.parametrize("fmt", ["human", "json", "sarif"])
def test_the_cli_output_is_bounded_in_every_format(hostile_plan: Path, fmt: str) -> None:
    result = CliRunner().invoke(app, ["validate", "-f", fmt, str(hostile_plan)])
    assert result.exit_code == 1
    assert "P2F102" in result.output and "P2F104" in result.output
    assert len(result.output) < (60_000 if fmt == "sarif" else 6_000)
    assert "k" * (WINDOW + 1) not in result.output and "9" * (WINDOW + 1) not in result.output


def test_file_paths_in_messages_are_shown_whole() -> None:
    """A CI checkout's paths are long; a message naming two plans must name them exactly."""
    first = "/home/runner/work/platform/platform/" + "nested/" * 12 + "first.yaml"
    second = first.replace("first", "second")
    message = f"plan name 'same' collides with the plan in {first}: both would write {second}"
    item = Diagnostic("P2F210", message, "/metadata/name", file=second, line=3, column=18)
    text = format_human([item], lambda _file, _line: None)
    assert message in text
    assert (
        json.loads(format_json([{"file": second, "ok": False, "diagnostics": [item]}]))["plans"][0][
            "diagnostics"
        ][0]["message"]
        == message
    )
