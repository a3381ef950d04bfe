"""The one `--param` parser (`plan2flow run`, `deploy`, `trigger`) and the cache key's digest."""

from __future__ import annotations

import pytest

from plan2flow.compiler.graph.canonical import canonical_json, digest
from plan2flow.flows.artifacts import Artifact, TaskOutput
from plan2flow.flows.caching import cache_key
from plan2flow.server.launch import LaunchError, parse_params

DECLARED = {
    "who": {"type": "string", "required": True},
    "n": {"type": "integer", "required": False},
    "x": {"type": "number", "required": False},
    "on": {"type": "boolean", "required": False},
    "items": {"type": "array", "required": False},
}


def test_values_are_typed_by_the_declarations() -> None:
    pairs = ["who=a=b", "n=3", "x=0.5", "on=TRUE", "items=[1, 2]"]
    assert parse_params(pairs, DECLARED) == {
        "who": "a=b",
        "n": 3,
        "x": 0.5,
        "on": True,
        "items": [1, 2],
    }


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["who"], "expected NAME=VALUE"),
        (["=x"], "expected NAME=VALUE"),
        (["whom=x"], "no such parameter (it has: items, n, on, who, x)"),
        (["who=a", "n=three"], "not a valid integer"),
        (["who=a", "x=nan"], "not a valid number"),
        (["who=a", "x=inf"], "not a valid number"),
        (["who=a", "items=[NaN]"], "not a valid array"),
        (["who=a", "on=yes"], "not a valid boolean"),
        (["n=1"], "missing required parameter(s): who"),
    ],
)
def test_bad_values_are_refused(pairs: list[str], message: str) -> None:
    with pytest.raises(LaunchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_params(pairs, DECLARED)


def test_required_parameters_may_be_left_to_the_deployment() -> None:
    assert parse_params(["n=1"], DECLARED, require_all=False) == {"n": 1}


def test_a_plan_known_by_name_takes_json_where_it_parses() -> None:
    pairs = ["n=1", "s=hello", 'o={"a": 1}', "f=NaN"]
    assert parse_params(pairs, None) == {"n": 1, "s": "hello", "o": {"a": 1}, "f": "NaN"}
    with pytest.raises(LaunchError, match="expected NAME=VALUE"):
        parse_params(["novalue"], None)


def test_the_cache_key_is_the_canonical_digest() -> None:
    upstream = {"a": TaskOutput("a", {"out": Artifact("/x/out", "sha256:00")})}
    key = cache_key("plan", "t", "sha256:11", upstream, {"who": "Ada", "n": 1})
    material = {
        "plan": "plan",
        "task": "t",
        "hash": "sha256:11",
        "upstream": {"a": {"out": "sha256:00"}},
        "values": {"n": 1, "who": "Ada"},
    }
    assert key == "plan2flow-" + digest(canonical_json(material)).removeprefix("sha256:")
    assert cache_key("plan", "t", "sha256:11", {"a": None}, {}) is None
    assert cache_key("plan", "t", "sha256:11", {}, {"x": float("nan")}) is None
