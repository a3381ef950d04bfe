"""Helpers for tests that compile and run plans for real."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from plan2flow.compiler import compile_plan
from plan2flow.compiler.codegen import flow_file_name, graph_file_name

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port() -> int:
    """A loopback port free now, for a server a test is about to start."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need_service(available: bool, reason: str) -> None:
    """Skip a test whose service is missing on a laptop; under CI=true, fail instead."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required services must be present)")
    pytest.skip(reason)


def plan_text(name: str, tasks: str, extra: str = "") -> str:
    return (
        f"apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {{name: {name}}}\n{extra}tasks:\n{tasks}"
    )


def build_module(directory: Path, text: str) -> Path:
    """Compile plan text into `directory` like `plan2flow compile`; return the module path."""
    result = compile_plan(text, "plan.yaml")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / graph_file_name(result.graph.name)).write_text(result.graph.text, "utf-8")
    module = directory / flow_file_name(result.graph.name)
    module.write_text(result.flow_source, "utf-8")
    return module


def import_flow(module_path: Path) -> Any:
    """Import a generated module as `plan2flow run` does, under a name of its own."""
    from plan2flow.server.launch import import_flow as launch_import

    return launch_import(module_path)


class MergeKey(str):
    """The YAML merge key `<<`, emitted plain (a plain str '<<' would be quoted)."""

    __slots__ = ()


MERGE = MergeKey("<<")


def dump(
    data: Any,
    *,
    flow: bool | None = False,
    quote: str | None = None,
    indent: int = 2,
    width: float = 80,
    explicit: bool = False,
    sort_keys: bool = False,
) -> str:
    """`yaml.safe_dump` with a chosen style for every string scalar (where YAML allows it)."""

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=quote)

    def represent_merge(dumper: yaml.SafeDumper, value: MergeKey) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:merge", "<<")

    Dumper.add_representer(str, represent_str)
    Dumper.add_representer(MergeKey, represent_merge)
    return yaml.dump(
        data,
        Dumper=Dumper,
        default_flow_style=flow,
        indent=indent,
        width=width,
        allow_unicode=True,
        explicit_start=explicit,
        explicit_end=explicit,
        sort_keys=sort_keys,
    )


BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_bench(stem: str) -> ModuleType:
    """``bench/<stem>.py`` imported by path (bench/ is not a package), under the name the
    benchmarks give each other (``plan2flow_bench_<stem>``), once per process."""
    name = f"plan2flow_bench_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module
