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

from plan2flow.compiler.spec.params import PackageParams

from .base import AgentBlock
from .contract import AgentRequest, AgentResult, Outcome

_BUILD = """
import sys
from setuptools import build_meta
out = sys.argv[1]
for kind in sys.argv[2:]:
    print(getattr(build_meta, "build_" + kind)(out))
"""


def sbom(project: dict[str, Any]) -> str:
    """A CycloneDX 1.5 JSON SBOM: the package and the requirements it declares."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot5
    from packageurl import PackageURL

    name, version = project["name"], project["version"]
    root = Component(
        name=name,
        version=version,
        type=ComponentType.LIBRARY,
        purl=PackageURL(type="pypi", name=name, version=version),
    )
    bom = Bom()
    bom.metadata.component = root
    for requirement in project.get("dependencies", []):
        dependency = Component(name=requirement, type=ComponentType.LIBRARY)
        bom.components.add(dependency)
        bom.register_dependency(root, [dependency])
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
            base = dist / f"{project['name']}-{project['version']}"
            shutil.make_archive(str(base), "zip", root_dir=source)
        if params.sbom:
            (dist / f"{project['name']}-{project['version']}.cdx.json").write_text(
                sbom(project), encoding="utf-8"
            )
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
