"""Helpers for tests that compile and run plans for real."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from plan2flow.compiler import compile_plan
from plan2flow.compiler.codegen import flow_file_name, graph_file_name

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


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
    """Import a generated module under a unique name and return its flow."""
    name = f"generated_{module_path.parent.name}_{module_path.stem}_{len(sys.modules)}"
    spec = importlib.util.spec_from_file_location(name, module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    flows = [v for v in vars(module).values() if hasattr(v, "with_options") and hasattr(v, "fn")]
    (flow,) = [f for f in flows if f.fn.__module__ == name]
    return flow
