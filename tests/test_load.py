"""The safe loader: plain data out, every YAML problem located, limits enforced before work."""

from __future__ import annotations

import tracemalloc

import pytest
import yaml

from plan2flow.compiler import PlanError
from plan2flow.compiler.load import (
    Limits,
    SourceMap,
    _Builder,
    _Fatal,
    _is_libyaml_nesting_limit,
    _PureParser,
    load_plan,
)


def codes(error: PlanError) -> list[tuple[str, int | None, int | None]]:
    return [(d.code, d.line, d.column) for d in error.diagnostics]


def problems(text: str) -> list[tuple[str, int | None, int | None]]:
    return [(d.code, d.line, d.column) for d in load_plan(text, "p.yaml").problems]


def test_plain_data_with_yaml_1_1_scalars() -> None:
    data = load_plan("a: 1\nb: 2.5\nc: true\nd: null\ne: 2024-01-01\nf: '3'\n", "p.yaml").data
    assert data == {"a": 1, "b": 2.5, "c": True, "d": None, "e": "2024-01-01", "f": "3"}


def test_merge_keys_and_aliases_expand_like_yaml() -> None:
    text = "base: &b {retries: 1, tags: [x]}\ntask:\n  <<: *b\n  retries: 2\nlist: [*b, *b]\n"
    data = load_plan(text, "p.yaml").data
    assert data["task"] == {"retries": 2, "tags": ["x"]}
    assert data["list"] == [{"retries": 1, "tags": ["x"]}] * 2


def test_merge_of_a_list_of_mappings() -> None:
    text = "a: &a {x: 1}\nb: &b {y: 2}\nc: {<<: [*a, *b], z: 3}\n"
    assert load_plan(text, "p.yaml").data["c"] == {"x": 1, "y": 2, "z": 3}


def test_merge_of_a_scalar_is_an_error() -> None:
    assert problems("a: &a 1\nb: {<<: *a}\n") == [("P2F104", 2, 9)]


def test_duplicate_keys_are_reported_at_the_second_with_the_first_related() -> None:
    (item,) = load_plan("a: 1\nb: 2\na: 3\n", "p.yaml").problems
    assert (item.code, item.line, item.column, item.pointer) == ("P2F004", 3, 1, "/a")
    assert [(r.line, r.column) for r in item.related] == [(1, 1)]


def test_duplicate_keys_in_nested_mappings_all_reported() -> None:
    text = "x:\n  k: 1\n  k: 2\ny:\n  - {m: 1, m: 2}\n"
    assert problems(text) == [("P2F004", 3, 3), ("P2F004", 5, 12)]


def test_non_string_keys_and_tags_and_nan() -> None:
    text = "1: a\non: b\nc: !custom x\nd: .inf\ne: !!binary aGk=\n"
    found = problems(text)
    assert found == [
        ("P2F104", 1, 1),
        ("P2F104", 2, 1),
        ("P2F008", 3, 4),
        ("P2F105", 4, 4),
        ("P2F008", 5, 4),
    ]


def test_collection_key_is_reported() -> None:
    assert problems("? [a, b]\n: 1\n") == [("P2F104", 1, 3)]


def test_custom_tag_on_a_collection() -> None:
    assert problems("a: !thing [1, 2]\n") == [("P2F008", 1, 4)]


@pytest.mark.parametrize(
    ("text", "code", "line", "column"),
    [
        ("a: [1\n", "P2F003", 2, 1),
        ("a: 1\n---\nb: 2\n", "P2F003", 2, 1),
        ("a:\n\t- 1\n", "P2F003", 2, 1),
        ("", "P2F007", 1, 1),
        ("# only a comment\n", "P2F007", 1, 1),
        ("- a\n- b\n", "P2F007", 1, 1),
        ("just text\n", "P2F007", 1, 1),
    ],
)
def test_unreadable_documents_are_fatal(text: str, code: str, line: int, column: int) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(text, "p.yaml")
    assert codes(caught.value)[0] == (code, line, column)


def test_tab_indentation_gets_a_hint() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("a:\n\t- 1\n", "p.yaml")
    assert caught.value.diagnostics[0].hint == "YAML indentation must use spaces, not tabs"


def test_multiple_documents_get_a_hint() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("a: 1\n---\nb: 2\n", "p.yaml")
    assert "remove the extra '---'" in (caught.value.diagnostics[0].hint or "")


def test_size_limit() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("a: " + "x" * 100 + "\n", "p.yaml", Limits(max_bytes=50))
    assert codes(caught.value) == [("P2F002", 1, 1)]


def test_invalid_utf8_is_located() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(b"a: 1\nb: caf\xe9\n", "p.yaml")
    assert codes(caught.value) == [("P2F009", 2, 7)]


def test_bom_and_crlf_are_accepted() -> None:
    assert load_plan("\ufeffa: 1\r\nb: 2\r\n".encode(), "p.yaml").data == {"a": 1, "b": 2}


def test_flow_nesting_is_refused_before_parsing_with_its_position() -> None:
    text = "a: 1\nb: " + "[" * 100_000 + "]" * 100_000 + "\n"
    with pytest.raises(PlanError) as caught:
        load_plan(text, "p.yaml")
    assert codes(caught.value) == [("P2F005", 2, 67)]


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "{x: " * 5000 + "1" + "}" * 5000 + "\n",
        "# " + "]" * 3000 + "\nb: " + "[" * 3000 + "\n",
        "a: 1\na: 2\nb: " + "[" * 1500 + "]" * 1500 + "\n",
        "".join("  " * d + f"k{d}:\n" for d in range(30)) + "  " * 30 + "- " + "[" * 2000 + "\n",
    ],
    ids=["flow_mappings", "after_a_comment", "after_another_problem", "flow_inside_block"],
)
def test_nesting_past_libyamls_own_limit_reads_as_the_pure_parser_reads_it(text: str) -> None:
    """Since PyYAML 6.0.4 libyaml stops at 1000 flow levels with its own error; the diagnostics
    must be those of a parser without that limit, whichever PyYAML is installed."""
    with pytest.raises(PlanError) as caught:
        load_plan(text, "p.yaml")
    builder = _Builder("p.yaml", Limits())
    with pytest.raises(_Fatal):
        builder.build(text, _PureParser)
    assert list(caught.value.diagnostics) == builder.problems
    assert caught.value.diagnostics[-1].code == "P2F005"


def test_libyamls_nesting_error_is_the_one_the_loader_recognises() -> None:
    """Pins the library behaviour the loader relies on: libyaml either reads 2000 flow levels
    (PyYAML <= 6.0.3) or stops with the error that `_is_libyaml_nesting_limit` recognises."""
    text = "a: " + "[" * 2000 + "]" * 2000 + "\n"
    try:
        for _event in yaml.parse(text, Loader=yaml.CSafeLoader):
            pass
    except yaml.YAMLError as error:
        assert _is_libyaml_nesting_limit(error), str(error)


def test_libyamls_other_errors_are_not_taken_for_its_nesting_limit() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("a: [1, 2\nb: 3\n", "p.yaml")
    assert [d.code for d in caught.value.diagnostics] == ["P2F003"]


def test_block_nesting_beyond_the_limit_is_reported_once() -> None:
    text = "".join("  " * depth + f"k{depth}:\n" for depth in range(70)) + "  " * 70 + "v\n"
    with pytest.raises(PlanError) as caught:
        load_plan(text, "p.yaml")
    assert codes(caught.value) == [("P2F005", 65, 129)]


def test_brackets_inside_strings_do_not_count_below_the_limit() -> None:
    text = "a: '" + "[" * 60 + "'\nb: [[1]]\n"
    assert load_plan(text, "p.yaml").data["b"] == [[1]]


def test_billion_laughs_is_refused_without_expanding() -> None:
    """Measured in memory, not time: expanding 10^12 nodes would need terabytes."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    for level in range(1, 12):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    tracemalloc.start()
    try:
        with pytest.raises(PlanError) as caught:
            load_plan("\n".join(lines) + "\n", "p.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert codes(caught.value)[0][0] == "P2F006"
    assert peak < 10 * 1024 * 1024


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("a: &a [1, *a]\n", "p.yaml")
    assert codes(caught.value) == [("P2F006", 1, 11)]


def test_modest_aliasing_is_allowed() -> None:
    text = "d: &d {retries: 1}\n" + "".join(f"t{i}: *d\n" for i in range(500))
    assert len(load_plan(text, "p.yaml").data) == 501


class TestSourceMap:
    text = "top:\n  list:\n    - name: a\n      value: 1\n  <<: {merged: 2}\n"

    def source(self) -> SourceMap:
        return load_plan(self.text, "p.yaml").source_map

    def test_value_and_key_spans(self) -> None:
        source = self.source()
        assert source.span("/top/list/0/value") == source.span("/top/list/0/value")
        value = source.span("/top/list/0/value")
        assert (value.line, value.column, value.end_column) == (4, 14, 15)
        key = source.span("/top/list/0/value", on_key=True)
        assert (key.line, key.column, key.end_column) == (4, 7, 12)

    def test_missing_parts_fall_back_to_the_nearest_ancestor(self) -> None:
        source = self.source()
        assert source.span("/top/list/0/nothing/deeper").line == 3
        assert source.span("/top/list/7").line == 3
        assert source.span("").line == 1

    def test_merged_keys_are_found_where_written(self) -> None:
        span = self.source().span("/top/merged")
        assert (span.line, span.column) == (5, 16)

    def test_line_text(self) -> None:
        source = self.source()
        assert source.line_text(3) == "    - name: a"
        assert source.line_text(99) == ""
        assert SourceMap("x", "").span("/a").line == 1


def test_many_sibling_flow_collections_are_not_nesting() -> None:
    text = "items:\n" + "".join(f"  - {{id: t{i}, deps: [a, b]}}\n" for i in range(200))
    assert len(load_plan(text, "p.yaml").data["items"]) == 200


@pytest.mark.parametrize("text", ["a: !!int v1\n", "a: !!float x\n", "a: !!bool maybe\n"])
def test_explicit_tags_with_wrong_text_are_reported(text: str) -> None:
    (item,) = load_plan(text, "p.yaml").problems
    assert (item.code, item.line, item.column) == ("P2F105", 1, 4)
    assert "is not a valid !!" in item.message


def test_locating_skips_complex_keys_and_finds_what_follows() -> None:
    text = "? [a, b]\n: 1\nafter:\n  - x\n  - {y: 2}\n"
    loaded = load_plan(text, "p.yaml")
    assert [d.code for d in loaded.problems] == ["P2F104"]
    source = loaded.source_map
    spans = source.spans([("/after/1/y", False), ("/after/1/y", True), ("/nothing", False)])
    assert (spans[("/after/1/y", False)].line, spans[("/after/1/y", False)].column) == (5, 9)
    assert (spans[("/after/1/y", True)].line, spans[("/after/1/y", True)].column) == (5, 6)
    assert spans[("/nothing", False)].line == 1


def test_a_flow_collection_on_one_line_is_underlined_whole() -> None:
    span = load_plan("a: {b: 1, c: [2, 3]}\n", "p.yaml").source_map.span("/a/c")
    assert (span.line, span.column, span.end_column) == (1, 14, 20)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_item_locating_agrees_with_a_full_scan(newline: str) -> None:
    """Pointers into one task are found by reading that task's text alone; the answer must be the
    one a scan of the whole file gives, whatever the style, characters or line endings."""
    text = newline.join(
        [
            "# é中文🙂 before the tasks",
            "metadata: {name: x, description: 'ünïcode 🙂'}",
            "tasks:",
            "  - id: a",
            "    params: {argv: [echo, 'é🙂', x]}",
            "    outputs:",
            "      - raw  # comment",
            "  - {id: b, depends_on: [a], params: {argv: ['🙂', y]}}",
            "  -   id: c",
            "      depends_on:",
            "      - b",
            "other: [1, 2]",
            "",
        ]
    )
    loaded = load_plan(text, "p.yaml")
    pointers = [
        ("/tasks/0", False),
        ("/tasks/0/params/argv/2", False),
        ("/tasks/0/outputs/0", False),
        ("/tasks/0/outputs", True),
        ("/tasks/1/params/argv/1", False),
        ("/tasks/1/depends_on/0", False),
        ("/tasks/1/id", True),
        ("/tasks/2/depends_on/0", False),
        ("/tasks/2/missing/deeper", False),
    ]
    fast = loaded.source_map.spans(pointers)
    full = SourceMap("p.yaml", loaded.source_map.text, composable=True)._scan(set(pointers))
    assert fast == full
    assert (
        fast[("/tasks/1/params/argv/1", False)].line,
        fast[("/tasks/1/params/argv/1", False)].column,
    ) == (8, 51)
