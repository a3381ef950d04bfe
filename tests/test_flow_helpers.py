"""The runtime's pure helpers: artifact digests and run-time template values."""

from __future__ import annotations

from pathlib import Path

from plan2flow.flows.artifacts import digest_path
from plan2flow.flows.templates import referenced_params, resolve


def test_directory_digest_covers_names_and_contents(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("one")
    (tree / "sub" / "b.txt").write_text("two")
    first = digest_path(tree)
    assert first == digest_path(tree) and first.startswith("sha256:")
    (tree / "sub" / "b.txt").write_text("TWO")
    changed = digest_path(tree)
    assert changed != first
    (tree / "sub" / "b.txt").rename(tree / "sub" / "c.txt")
    assert digest_path(tree) != changed


def test_file_digest_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_bytes(b"")
    assert digest_path(file) == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_templates_render_values_as_text() -> None:
    namespaces = {
        "params": {"flag": True, "n": 3, "x": None, "items": [2, 1], "cfg": {"b": 1, "a": 2}},
        "inputs": {"data": "/in/data"},
        "outputs": {"out": "/out/out"},
    }
    value = {
        "argv": [
            "${{ params.flag }}",
            "${{params.n}}",
            "${{ params.x }}",
            "${{ params.items }}",
            "${{ params.cfg }}",
            "${{ inputs.data }}:${{ outputs.out }}",
        ],
        "keep": 7,
    }
    assert resolve(value, namespaces) == {
        "argv": ["true", "3", "null", "[2, 1]", '{"a": 2, "b": 1}', "/in/data:/out/out"],
        "keep": 7,
    }
    assert referenced_params(value) == {"flag", "n", "x", "items", "cfg"}
