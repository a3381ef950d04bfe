"""Packager: builds an assembled project into a wheel and an sdist (offline, with this
environment's setuptools), a zip of the project, a CycloneDX SBOM and SHA-256 checksums."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, ClassVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from plan2flow.compiler.spec import names
from plan2flow.compiler.spec.params import PackageParams

from .base import AgentBlock
from .confine import inside, refusing, require
from .contract import AgentRequest, AgentResult, Outcome
from .errors import Refused

_BUILD = """
import sys
from setuptools import build_meta
out = sys.argv[1]
for kind in sys.argv[2:]:
    print(getattr(build_meta, "build_" + kind)(out))
"""


def _pinned(specifier: SpecifierSet) -> str | None:
    """The one version a specifier allows (``==1.2``), or None."""
    pins = {s.version for s in specifier if s.operator in {"==", "==="} and "*" not in s.version}
    return pins.pop() if len(pins) == 1 else None


def requirements(declared: list[str]) -> dict[str, tuple[str, SpecifierSet]]:
    """Canonical project name → (the name as first written, every specifier on it combined);
    a project required twice (``click``, ``click>=8``) is one dependency."""
    found: dict[str, tuple[str, SpecifierSet]] = {}
    for text in declared:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            raise Refused(f"requirement {text!r} is not a valid requirement (PEP 508)") from None
        key = canonicalize_name(requirement.name)
        shown, specifier = found.get(key, (requirement.name, SpecifierSet()))
        found[key] = (shown, specifier & requirement.specifier)
    return found


def sbom(project: dict[str, Any]) -> str:
    """A CycloneDX 1.5 JSON SBOM: the package and the requirements it declares, each named by
    its project name, with its version and purl when the requirement pins one."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot5
    from packageurl import PackageURL

    def component(name: str, version: str | None, description: str | None = None) -> Component:
        purl = PackageURL(type="pypi", name=canonicalize_name(name), version=version)
        return Component(
            name=name,
            version=version,
            description=description,
            type=ComponentType.LIBRARY,
            purl=purl,
            bom_ref=purl.to_string(),
        )

    root = component(project["name"], project["version"])
    bom = Bom()
    bom.metadata.component = root
    dependencies = []
    for _key, (name, specifier) in sorted(requirements(project.get("dependencies", [])).items()):
        dependency = component(name, _pinned(specifier), f"requires {name}{specifier}")
        bom.components.add(dependency)
        dependencies.append(dependency)
    bom.register_dependency(root, dependencies)
    return str(JsonV1Dot5(bom).output_as_string(indent=2)) + "\n"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PackagerAgent(AgentBlock):
    """Builds the release files of an assembled project."""

    _block_type_slug = "plan2flow-packager"
    _block_type_name = "plan2flow Packager"
    _description = "Builds wheel and sdist offline, a zip, a CycloneDX SBOM and checksums."
    task_types: ClassVar[tuple[str, ...]] = ("package",)
    params_model: ClassVar[Any] = PackageParams
    required_inputs: ClassVar[tuple[str, ...]] = ("project",)
    required_outputs: ClassVar[tuple[str, ...]] = ("dist",)

    timeout_seconds: float = 600.0

    @refusing
    def execute(self, request: AgentRequest) -> AgentResult:
        params = PackageParams.model_validate(request.params, strict=False)
        source = Path(request.inputs["project"])
        dist = Path(request.outputs["dist"])
        dist.mkdir(parents=True, exist_ok=True)
        # Build a copy: setuptools writes build/ and *.egg-info beside the sources, and the
        # project is another task's artifact.
        work = Path(request.workspace) / "build-src"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(source, work)
        project = tomllib.loads((work / "pyproject.toml").read_text("utf-8"))["project"]
        require(names.project_name_problem(project["name"]))
        require(names.version_problem(project["version"]))
        release = f"{project['name']}-{project['version']}"
        document = sbom(project) if params.sbom else None
        kinds = [kind for kind in ("wheel", "sdist") if kind in params.formats]
        if kinds:
            done = subprocess.run(
                [sys.executable, "-c", _BUILD, str(dist), *kinds],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=self.timeout_seconds,
                check=False,
            )
            if done.returncode != 0:
                lines = (done.stdout + done.stderr).strip().splitlines()
                return AgentResult(
                    outcome=Outcome.FAILED, findings=lines[-15:] or ["build failed"], quality=0.0
                )
        if "zip" in params.formats:
            archive = inside(dist, f"{release}.zip")
            shutil.make_archive(str(archive.with_suffix("")), "zip", root_dir=source)
        if document is not None:
            inside(dist, f"{release}.cdx.json").write_text(document, encoding="utf-8")
        files = sorted(p for p in dist.iterdir() if p.is_file() and p.name != "SHA256SUMS")
        (dist / "SHA256SUMS").write_text(
            "".join(f"{sha256_of(p)}  {p.name}\n" for p in files), encoding="utf-8"
        )
        return AgentResult(
            outcome=Outcome.SUCCEEDED,
            outputs={"dist": str(dist)},
            metrics={"files": float(len(files))},
            log_excerpt="built " + ", ".join(p.name for p in files),
        )
