"""The compiler runs offline and light: importing it must not import Prefect."""

from __future__ import annotations

import itertools
import subprocess
import sys


def test_compiler_does_not_import_prefect() -> None:
    code = (
        "import sys, plan2flow.compiler, plan2flow.cli;"
        "from plan2flow.compiler import compile_plan;"
        "compile_plan('apiVersion: plan2flow/v1\\nkind: Plan\\nmetadata: {name: a}\\n"
        "tasks: [{id: a, type: noop}]\\n');"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_public_api_is_sorted_and_complete() -> None:
    import plan2flow.compiler as compiler

    assert compiler.__all__ == sorted(compiler.__all__)
    for name in compiler.__all__:
        assert hasattr(compiler, name)


def test_every_package_and_template_ships_in_the_wheel() -> None:
    """The distribution lists its packages by hand (the folders map into one namespace): a new
    subpackage or data file must be listed, or a non-editable install breaks."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = config["package-dir"]
    assert set(folders.values()) == {path.parent.name for path in root.glob("*/__init__.py")}, (
        "every top-level package folder is a part of the namespace"
    )
    found = set()
    for package, folder in folders.items():
        for init in sorted((root / folder).rglob("__init__.py")):
            relative = init.parent.relative_to(root / folder).parts
            found.add(".".join([package, *relative]))
    assert set(config["packages"]) == found
    data = config["package-data"]
    for package in folders:
        assert "py.typed" in data[package], f"{package} ships no py.typed"
    for template in (root / "compiler" / "codegen" / "templates").glob("*"):
        assert f"templates/*{template.suffix}" in data["plan2flow.compiler.codegen"]


def test_the_architecture_picture_follows_the_layers_contract() -> None:
    """docs/architecture.md draws the parts in the contract's order, each above the next."""
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    parts = [layer.removeprefix("plan2flow.") for layer in layers]
    doc = (root / "docs" / "architecture.md").read_text("utf-8")
    picture = doc.split("<!-- parts:", 1)[1].split("```mermaid", 1)[1].split("```", 1)[0]
    arrows = re.findall(r"^\s*(\w+)(?:\[[^\]]*\])?\s*-->\s*(\w+)", picture, re.MULTILINE)
    assert arrows == list(itertools.pairwise(parts))
    assert set(parts) == {p.removeprefix("plan2flow.") for p in config["root_packages"]}
