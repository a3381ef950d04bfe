"""The params of each task type, validated by the type's own model."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints

from .base import Model, PythonName, pattern
from .component_spec import ComponentSpec


class NoopParams(Model):
    """A join point, like Airflow's EmptyOperator: no params."""


class ShellParams(Model):
    argv: Annotated[list[str], Field(min_length=1)]
    """The command and its arguments, run without a shell."""
    shell: bool = False
    """Run `argv[0]` as a `/bin/sh -c` script, the rest of `argv` as its positional arguments."""
    env: dict[str, str] = {}
    """Extra environment variables."""
    cwd: str | None = None
    """Working directory, relative to the run's workspace."""


class PythonParams(Model):
    callable: Annotated[
        str,
        StringConstraints(
            pattern=pattern(
                r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
                "a callable 'package.module:function'",
            )
        ),
    ]
    """`package.module:function`, called with `kwargs` and the task's input artifacts."""
    kwargs: dict[PythonName, JsonValue] = {}
    """Keyword arguments (JSON values)."""


class GenerateCodeParams(Model):
    spec: ComponentSpec | None = None
    """What to generate. A component's `spec` lands here."""
    language: Literal["python"] = "python"
    """The target language."""


class AssembleParams(Model):
    project_name: str | None = None
    """Distribution name; defaults to the plan's name."""
    version: str | None = None
    """Distribution version; defaults to the plan's version."""
    python_requires: str = ">=3.11"
    """The `requires-python` of the assembled project."""
    dependencies: list[str] = []
    """Requirement strings of the assembled project."""
    scripts: dict[str, str] = {}
    """Console scripts: command name → `module:function`."""


class ValidateParams(Model):
    ruff: bool = True
    """Run ruff on every file."""
    mypy: bool = False
    """Run mypy as well."""


class TestParams(Model):
    __test__ = False  # not a pytest test class

    args: list[str] = []
    """Extra pytest arguments; installed plugins load only when named (`-p asyncio`)."""
    python: str | None = None
    """Python version to test with, often `${{ matrix.python }}`."""


class PackageParams(Model):
    formats: Annotated[list[Literal["wheel", "sdist", "zip"]], Field(min_length=1)] = [
        "wheel",
        "sdist",
    ]
    """What to build."""
    sbom: bool = True
    """Write a CycloneDX SBOM beside the packages."""


class DeployParams(Model):
    target: Literal["directory", "git", "venv"] = "directory"
    """Where the release goes."""
    path: str | None = None
    """The target directory, repository or virtual environment."""
    smoke_command: list[str] = []
    """A command to run after a `venv` deploy; it must exit 0."""
    dry_run: bool = False
    """Report what would change without changing it."""
    allow_unverified: bool = False
    """Allow this deploy without a `validate` and a `test` upstream."""
