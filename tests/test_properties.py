"""Property-based tests of the compiler's two promises to every caller.

1. Determinism: a random valid DAG plan, written out in any key order, task order, ``depends_on``
   order and YAML style, always compiles to the same bytes and hash.
2. Robustness: for any input, ``compile_plan`` returns or raises :class:`PlanError`, never another
   exception, and every diagnostic is fully located (file, line >= 1, column >= 1, a P2Fnnn code).

Hypothesis runs derandomized and without an example database, so CI runs are reproducible.
"""

from __future__ import annotations

import copy
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import dump

from plan2flow.compiler import CODES, CompileResult, Diagnostic, PlanError, compile_plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples" / "plans").glob("*.yaml"))
EXAMPLE_TEXTS = {path.stem: path.read_text(encoding="utf-8") for path in EXAMPLES}
EXAMPLE_DATA = {stem: yaml.safe_load(text) for stem, text in EXAMPLE_TEXTS.items()}
CODE = re.compile(r"^P2F\d{3}$")

PROPERTY_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Data = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Writing plans out in many YAML styles
# --------------------------------------------------------------------------------------------


@st.composite
def styles(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "flow": draw(st.sampled_from([False, True, None])),
        "quote": draw(st.sampled_from([None, '"', "'", "|"])),
        "indent": draw(st.integers(2, 5)),
        "width": draw(st.sampled_from([30, 80, float("inf")])),
        "explicit": draw(st.booleans()),
        "crlf": draw(st.booleans()),
        "bom": draw(st.booleans()),
        "comments": draw(st.booleans()),
        "as_bytes": draw(st.booleans()),
    }


def render(data: Data, style: dict[str, Any]) -> str | bytes:
    text = dump(
        data,
        flow=style["flow"],
        quote=style["quote"],
        indent=style["indent"],
        width=style["width"],
        explicit=style["explicit"],
    )
    if style["comments"]:
        text = f"# leading comment: [x] {{y}} *z &w\n{text}# trailing comment\n"
    if style["crlf"]:
        text = text.replace("\n", "\r\n")
    if style["bom"]:
        text = "\ufeff" + text
    return text.encode("utf-8") if style["as_bytes"] else text


def rearranged(data: Data, rnd: random.Random) -> Data:
    """The same plan with every mapping's keys, the tasks and every depends_on list shuffled."""

    def walk(value: Any, key: str | None) -> Any:
        if isinstance(value, dict):
            items = [(k, walk(v, k)) for k, v in value.items()]
            rnd.shuffle(items)
            return dict(items)
        if isinstance(value, list):
            items = [walk(v, None) for v in value]
            if key in ("tasks", "depends_on"):
                rnd.shuffle(items)
            return items
        return value

    return walk(copy.deepcopy(data), None)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Property 1: random valid DAG plans of noop and shell tasks
# --------------------------------------------------------------------------------------------

TASK_IDS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,9}", fullmatch=True)
TAGS = st.from_regex(r"[A-Za-z0-9_:./-]{1,8}", fullmatch=True)
# Text that YAML must quote, escape or fold correctly, and arbitrary printable Unicode.
TRICKY = st.sampled_from(
    [
        "",
        " ",
        "yes",
        "No",
        "on",
        "null",
        "~",
        "true",
        "1",
        "0x1F",
        "1_000",
        "3.10",
        ".inf",
        "1e3",
        "2024-01-01",
        "12:30:00",
        "- item",
        "key: value",
        "a # not a comment",
        "#hash",
        "*alias",
        "&anchor",
        "!tag",
        "%directive",
        "@at",
        "`tick",
        "<<",
        "=",
        "?",
        "[a, b]",
        "{a: b}",
        "'single'",
        '"double"',
        "back\\slash",
        "tab\there",
        "line\nbreak",
        "trailing\n",
        "  leading and trailing  ",
        "---",
        "...",
        "é中文🙂",
        "\x07\x1b",
    ]
)
# NEL, LS and PS are YAML 1.1 line breaks that PyYAML's emitter writes raw inside quoted scalars,
# where a loader folds them: the dumped text would not mean the generated data.
TEXT = TRICKY | st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x85\u2028\u2029"),
    max_size=12,
).filter(lambda s: "${{" not in s)
FLOATS = st.floats(min_value=0.001, max_value=86400, allow_nan=False, allow_infinity=False)


@st.composite
def shell_params(draw: st.DrawFn, inputs: list[str], outputs: list[str]) -> dict[str, Any]:
    argv = draw(st.lists(TEXT, min_size=1, max_size=3))
    templates = [f"${{{{ inputs.{name} }}}}" for name in inputs]
    templates += [f"${{{{ outputs.{name} }}}}" for name in outputs]
    if templates and draw(st.booleans()):
        argv.append(draw(st.sampled_from(templates)))
    params: dict[str, Any] = {"argv": argv}
    if draw(st.booleans()):
        params["shell"] = draw(st.booleans())
    if draw(st.booleans()):
        params["env"] = draw(st.dictionaries(TEXT, TEXT, max_size=3))
    if draw(st.booleans()):
        params["cwd"] = draw(TEXT)
    return params


@st.composite
def dag_plans(draw: st.DrawFn) -> Data:
    ids = draw(st.lists(TASK_IDS, min_size=1, max_size=7, unique=True))
    produced: list[tuple[str, str]] = []
    tasks = []
    for index, task_id in enumerate(ids):
        task: dict[str, Any] = {"id": task_id, "type": draw(st.sampled_from(["noop", "shell"]))}
        earlier = ids[:index]
        if earlier:
            depends_on = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3))
            if depends_on:
                task["depends_on"] = depends_on
        inputs: dict[str, str] = {}
        if produced:
            chosen = draw(st.lists(st.sampled_from(produced), unique=True, max_size=2))
            inputs = {f"in_{n}": f"{producer}.{name}" for n, (producer, name) in enumerate(chosen)}
            if inputs:
                task["inputs"] = inputs
        matrix = None
        if draw(st.integers(0, 4)) == 0:
            values = st.one_of(
                st.lists(st.integers(-5, 99), min_size=1, max_size=3, unique=True),
                st.lists(
                    st.from_regex(r"[a-z0-9.]{1,4}", fullmatch=True),
                    min_size=1,
                    max_size=3,
                    unique=True,
                ),
                st.lists(st.booleans(), min_size=1, max_size=2, unique=True),
            )
            matrix = draw(
                st.dictionaries(
                    st.sampled_from(["os", "py", "region"]), values, min_size=1, max_size=2
                )
            )
            task["matrix"] = matrix
        outputs: list[str] = []
        if matrix is None:
            outputs = draw(
                st.lists(st.sampled_from(["out", "log", "data_1"]), unique=True, max_size=2)
            )
            if outputs:
                task["outputs"] = outputs
                produced.extend((task_id, name) for name in outputs)
        if task["type"] == "shell":
            task["params"] = draw(shell_params(list(inputs), outputs))
            if matrix and draw(st.booleans()):
                task["params"]["argv"].append(f"${{{{ matrix.{next(iter(matrix))} }}}}")
        elif draw(st.booleans()):
            task["params"] = {}
        if draw(st.booleans()):
            task["description"] = draw(TEXT)
        if draw(st.booleans()):
            task["retries"] = draw(st.integers(0, 100))
        if draw(st.booleans()):
            task["retry_delay_seconds"] = draw(st.integers(0, 600) | FLOATS)
        if draw(st.booleans()):
            task["timeout_seconds"] = draw(st.integers(1, 600) | FLOATS)
        if draw(st.booleans()):
            task["tags"] = draw(st.lists(TAGS, max_size=3))
        tasks.append(task)
    plan: Data = {
        "apiVersion": "plan2flow/v1",
        "kind": "Plan",
        "metadata": {
            "name": draw(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True))
        },
        "tasks": tasks,
    }
    if draw(st.booleans()):
        plan["metadata"]["description"] = draw(TEXT)
        plan["metadata"]["labels"] = draw(st.dictionaries(TEXT, TEXT, max_size=2))
    if draw(st.booleans()):
        plan["defaults"] = {
            "retries": draw(st.integers(0, 100)),
            "tags": draw(st.lists(TAGS, max_size=2)),
            "max_parallelism": draw(st.integers(1, 1024)),
        }
    return plan


def _expected_edges(plan: Data) -> set[tuple[str, str]]:
    """The edges a plan's depends_on and inputs imply, with matrix tasks expanded."""
    tasks = {task["id"]: task for task in plan["tasks"]}
    edges = set()
    for task in plan["tasks"]:
        ups = set(task.get("depends_on", []))
        ups |= {ref.rsplit(".", 1)[0] for ref in task.get("inputs", {}).values()}
        edges |= {(up, task["id"]) for up in ups}

    def names(task_id: str) -> list[str]:
        matrix = tasks[task_id].get("matrix")
        if not matrix:
            return [task_id]
        result = [""]
        for axis in sorted(matrix):
            rendered = [str(v).lower() if isinstance(v, bool) else str(v) for v in matrix[axis]]
            result = [f"{r},{axis}={v}" if r else f"{axis}={v}" for r in result for v in rendered]
        return [f"{task_id}[{r}]" for r in result]

    return {(u, d) for up, down in edges for u in names(up) for d in names(down)}


@pytest.mark.slow
@settings(PROPERTY_SETTINGS, max_examples=100)
@given(
    plan=dag_plans(),
    rnd=st.randoms(use_true_random=False),
    variants=st.lists(styles(), min_size=2, max_size=3),
)
def test_random_dag_plan_hash_is_invariant_under_rewriting(
    plan: Data, rnd: random.Random, variants: list[dict[str, Any]]
) -> None:
    reference = compile_plan(dump(plan, sort_keys=True), "reference.yaml")
    document = reference.graph.document
    assert {(e["from"], e["to"]) for e in document["edges"]} == _expected_edges(plan)
    assert reference.graph.hash == document["hash"]
    for index, style in enumerate(variants):
        variant = rearranged(plan, rnd)
        source = render(variant, style)
        # The rewriting must mean the same data (else the dumper, not the compiler, is wrong).
        assert yaml.load(source, Loader=yaml.CSafeLoader) == variant, "dumper round trip"
        result = compile_plan(source, f"variant-{index}.yaml")
        assert result.graph.text == reference.graph.text, (style, source)
        assert result.graph.hash == reference.graph.hash


def _downstream(document: dict[str, Any], roots: set[str]) -> set[str]:
    children: dict[str, list[str]] = {}
    for edge in document["edges"]:
        children.setdefault(edge["from"], []).append(edge["to"])
    seen, stack = set(roots), list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


@pytest.mark.slow
@settings(PROPERTY_SETTINGS, max_examples=40)
@given(plan=dag_plans(), draw=st.data())
def test_random_dag_task_change_changes_exactly_the_downstream_task_hashes(
    plan: Data, draw: st.DataObject
) -> None:
    before = compile_plan(dump(plan), "before.yaml")
    index = draw.draw(st.integers(0, len(plan["tasks"]) - 1), label="changed task")
    changed_plan = copy.deepcopy(plan)
    task = changed_plan["tasks"][index]
    retries = task.get("retries", changed_plan.get("defaults", {}).get("retries", 0))
    task["retries"] = (retries + 1) % 101
    after = compile_plan(dump(changed_plan), "after.yaml")

    document = before.graph.document
    made = {t["id"] for t in document["tasks"] if t["origin"]["source"] == f"tasks[{task['id']}]"}
    old = {t["id"]: t["hash"] for t in document["tasks"]}
    new = {t["id"]: t["hash"] for t in after.graph.document["tasks"]}
    assert set(old) == set(new)
    changed = {task_id for task_id in old if old[task_id] != new[task_id]}
    assert changed == _downstream(document, made)
    assert after.graph.hash != before.graph.hash


# --------------------------------------------------------------------------------------------
# Property 2: mutated example plans compile or raise PlanError with located diagnostics
# --------------------------------------------------------------------------------------------

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)

GARBAGE = st.lists(
    st.sampled_from(
        [
            ":",
            ": ",
            "- ",
            "-",
            "[",
            "]",
            "{",
            "}",
            ",",
            "&a ",
            "*a",
            "*a ",
            "&a",
            "!!python/object:os.system ",
            "!!str ",
            "!!int ",
            "!!float ",
            "!!bool ",
            "!!null ",
            "!!binary ",
            "!custom ",
            "<<: ",
            "<<: *a",
            "? ",
            "|",
            ">-",
            "'",
            '"',
            "#",
            "%YAML 1.1",
            "\n---\n",
            "\n...\n",
            "\t",
            "\n",
            "\r",
            "  ",
            "\x00",
            "\x07",
            "\ufeff",
            "\u2028",
            "é",
            "${{ matrix.x }}",
            "${{ nope }}",
            ".nan",
            "-.inf",
            "1e999",
            "0x",
            "~",
            "2024-01-01",
            "id",
            "tasks",
            "depends_on",
            "type: shell",
        ]
    )
    | st.text(max_size=5),
    min_size=1,
    max_size=6,
).map("".join)


TAGS_OF_VALUES = ["!!str", "!!int", "!!float", "!!bool", "!!null", "!!seq", "!!map", "!x", "!"]


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "mapping"


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value below the root."""
    found = []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _units(data: Data) -> list[tuple[str, dict[str, Any], str]]:
    """(list key, unit, name field) of every task and component that is a mapping."""
    found = []
    for key, field in (("tasks", "id"), ("components", "name")):
        items = data.get(key)
        if isinstance(items, list):
            found += [(key, item, field) for item in items if isinstance(item, dict)]
    return found


def mutate_data(data: Data, draw: st.DataObject) -> Data:
    data = copy.deepcopy(data)
    kind = draw.draw(
        st.sampled_from(["delete", "replace", "duplicate_task", "swap_ids", "retarget", "cycle"]),
        label="mutation",
    )
    everything = paths(data)
    if not everything:
        return data
    if kind == "delete":
        path = draw.draw(st.sampled_from(everything), label="path")
        del get(data, path[:-1])[path[-1]]
    elif kind == "replace":
        path = draw.draw(st.sampled_from(everything), label="path")
        old = get(data, path)
        new = draw.draw(JSONISH.filter(lambda v: json_type(v) != json_type(old)), label="value")
        get(data, path[:-1])[path[-1]] = new
    elif kind == "duplicate_task":
        tasks = data.get("tasks") or data.get("components")
        if isinstance(tasks, list) and tasks:
            index = draw.draw(st.integers(0, len(tasks) - 1), label="task")
            where = draw.draw(st.integers(0, len(tasks)), label="where")
            tasks.insert(where, copy.deepcopy(tasks[index]))
    else:
        units = _units(data)
        names = [unit[field] for _, unit, field in units if field in unit]
        if len(units) >= 2 and names:
            first, second = draw.draw(
                st.lists(st.sampled_from(range(len(units))), min_size=2, max_size=2, unique=True),
                label="units",
            )
            (_, a, field_a), (_, b, field_b) = units[first], units[second]
            if kind == "swap_ids":
                a[field_a], b[field_b] = b.get(field_b), a.get(field_a)
            elif kind == "retarget":
                a["depends_on"] = [draw.draw(st.sampled_from(names), label="target")]
            else:  # a cycle between two units
                a["depends_on"] = [*a.get("depends_on", []), b.get(field_b)]
                b["depends_on"] = [*b.get("depends_on", []), a.get(field_a)]
    return data


def mutate_text(text: str, draw: st.DataObject) -> str:
    kind = draw.draw(
        st.sampled_from(
            ["insert", "truncate", "delete", "duplicate_line", "indent", "replace", "tag"]
        ),
        label="text mutation",
    )
    position = draw.draw(st.integers(0, len(text)), label="position")
    if kind == "tag":  # an explicit tag on a value: `key: !!int value`, `- !!bool item`
        starts = [m.end() for m in re.finditer(r"(?<=\S): |^\s*- ", text, re.MULTILINE)]
        if starts:
            at = draw.draw(st.sampled_from(starts), label="tagged value")
            tag = draw.draw(st.sampled_from(TAGS_OF_VALUES), label="tag")
            return f"{text[:at]}{tag} {text[at:]}"
        return text
    if kind == "insert":
        return text[:position] + draw.draw(GARBAGE, label="garbage") + text[position:]
    if kind == "truncate":
        return text[:position]
    if kind == "delete":
        end = draw.draw(st.integers(position, min(len(text), position + 40)), label="end")
        return text[:position] + text[end:]
    if kind == "replace":
        return text[:position] + draw.draw(GARBAGE, label="garbage") + text[position + 1 :]
    lines = text.split("\n")
    line = draw.draw(st.integers(0, len(lines) - 1), label="line")
    if kind == "duplicate_line":
        lines.insert(line, lines[line])
    else:
        shift = draw.draw(st.sampled_from([" ", "  ", "\t", "-1"]), label="shift")
        lines[line] = lines[line][1:] if shift == "-1" else shift + lines[line]
    return "\n".join(lines)


def check_located(diagnostics: tuple[Diagnostic, ...], filename: str, text: str) -> None:
    last_line = len(text.splitlines()) + 1
    for item in diagnostics:
        assert CODE.match(item.code), item
        assert item.code in CODES, item
        assert item.message, item
        assert item.file == filename, item
        assert isinstance(item.line, int), item
        assert isinstance(item.column, int), item
        assert 1 <= item.line <= last_line, item
        assert item.column >= 1, item
        for related in item.related:
            assert related.line is None or related.line >= 1, item
            assert related.column is None or related.column >= 1, item


def compile_or_plan_error(source: str | bytes, filename: str) -> CompileResult | PlanError:
    """Compile; a PlanError is an answer, any other exception fails the test."""
    try:
        return compile_plan(source, filename)
    except PlanError as error:
        return error


def assert_well_behaved(source: str | bytes, filename: str = "mutated.yaml") -> None:
    text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
    outcome = compile_or_plan_error(source, filename)
    if isinstance(outcome, PlanError):
        assert outcome.diagnostics, "a PlanError must carry at least one diagnostic"
        check_located(outcome.diagnostics, filename, text)
        again = compile_or_plan_error(source, filename)
        assert isinstance(again, PlanError)
        assert again.diagnostics == outcome.diagnostics
    else:
        check_located(outcome.warnings, filename, text)
        assert json.loads(outcome.graph.text)["hash"] == outcome.graph.hash


@pytest.mark.slow
@settings(PROPERTY_SETTINGS, max_examples=400)
@given(
    stem=st.sampled_from(sorted(EXAMPLE_TEXTS)),
    data_mutations=st.integers(0, 2),
    text_mutations=st.integers(0, 2),
    style=styles(),
    draw=st.data(),
)
def test_mutated_plans_compile_or_raise_located_plan_errors(
    stem: str,
    data_mutations: int,
    text_mutations: int,
    style: dict[str, Any],
    draw: st.DataObject,
) -> None:
    if data_mutations:
        data = EXAMPLE_DATA[stem]
        for _ in range(data_mutations):
            data = mutate_data(data, draw)
        source = render(data, {**style, "crlf": False, "bom": False, "as_bytes": False})
    else:
        source = EXAMPLE_TEXTS[stem]
    assert isinstance(source, str)
    for _ in range(text_mutations):
        source = mutate_text(source, draw)
    if style["crlf"]:
        source = source.replace("\n", "\r\n")
    if style["bom"]:
        source = "\ufeff" + source
    if style["as_bytes"]:
        raw = source.encode("utf-8")
        if draw.draw(st.booleans(), label="invalid utf-8"):
            at = draw.draw(st.integers(0, len(raw)), label="byte position")
            bad = draw.draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]), label="bytes")
            raw = raw[:at] + bad + raw[at:]
        assert_well_behaved(raw)
    else:
        assert_well_behaved(source)


@settings(PROPERTY_SETTINGS, max_examples=200)
@given(source=st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_input_compiles_or_raises_located_plan_error(source: str | bytes) -> None:
    assert_well_behaved(source)


# --------------------------------------------------------------------------------------------
# Regressions: inputs found to escape the PlanError contract
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        # Block sequences need no brackets, so the flow-depth pre-check does not see them, and a
        # '*' anywhere (here in a comment) sends the tree through the recursive alias counter.
        "k:\n" + "- " * 1000 + "x\n# *\n",
        "a: &x 1\nb: *x\nk:\n" + "- " * 1000 + "x\n",
    ],
    ids=["star_in_comment", "real_alias"],
)
def test_deep_block_nesting_with_an_alias_raises_plan_error(source: str) -> None:
    """Regression: the old loader's recursive alias counter (`_expanded_size`) raised
    RecursionError here instead of P2F005."""
    with pytest.raises(PlanError) as caught:
        compile_plan(source, "deep.yaml")
    check_located(caught.value.diagnostics, "deep.yaml", source)


_CRASH_PROBE = """
import sys
from plan2flow.compiler import PlanError, compile_plan
kind, depth = sys.argv[1], int(sys.argv[2])
if kind == "block":
    source = "k:\\n" + "- " * depth + "x\\n"
else:
    source = "# " + "]" * depth + "\\nk: " + "[" * depth + "]" * depth + "\\n"
try:
    compile_plan(source, "deep.yaml")
except PlanError as error:
    print(" ".join(sorted({d.code for d in error.diagnostics})))
else:
    print("compiled")
"""


@pytest.mark.parametrize(
    "kind",
    ["block", "flow_after_closing_brackets"],
    ids=["block_sequences", "flow_brackets_hidden_by_comment"],
)
def test_very_deep_nesting_does_not_crash_the_process(kind: str) -> None:
    """Regression: a 200 kB plan of nested block sequences (`- - - ... x`), or deep flow brackets
    after a comment of closing brackets that fooled the old bracket pre-check, overflowed the C
    stack in libyaml's recursive composer: the process died with SIGSEGV. Run in a subprocess."""
    done = subprocess.run(
        [sys.executable, "-c", _CRASH_PROBE, kind, "100000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-500:]}"
    assert done.stdout.split() == ["P2F005"], done.stdout


@pytest.mark.parametrize(
    "value",
    ["!!int abc", "!!int ''", "!!int 0x", "!!float abc", "!!float ''", "!!bool maybe"],
)
def test_explicit_core_tag_with_invalid_content_raises_plan_error(value: str) -> None:
    """Regression: `!!int abc` raised ValueError, `!!int ''` IndexError and `!!bool maybe`
    KeyError, from PyYAML's constructors called without catching their errors."""
    source = f"apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {{name: a}}\nx: {value}\n"
    with pytest.raises(PlanError) as caught:
        compile_plan(source, "tagged.yaml")
    check_located(caught.value.diagnostics, "tagged.yaml", source)


def test_str_source_with_a_lone_surrogate_raises_plan_error() -> None:
    """Regression: UnicodeEncodeError from libyaml's reader for a `str` that is not valid Unicode
    text (a lone surrogate, as `surrogateescape` decoding produces)."""
    source = "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: a\udce9}\n"
    with pytest.raises(PlanError) as caught:
        compile_plan(source, "surrogate.yaml")
    check_located(caught.value.diagnostics, "surrogate.yaml", source)
