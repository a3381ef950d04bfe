"""Deployer: puts a release where it is used: a `directory` (a release folder with a manifest),
a `venv` (the wheel installed into a virtual environment, then a smoke command), or a `git`
repository (committed and tagged; a dirty working tree is refused). Idempotent, with a dry run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from plan2flow.compiler.spec.params import DeployParams

from .base import AgentBlock
from .confine import inside, refusing
from .contract import AgentRequest, AgentResult, Outcome
from .packager import sha256_of


def _release(dist: Path) -> tuple[str, dict[str, str]]:
    """The release name (`<name>-<version>`) and its files' checksums."""
    files = {p.name: sha256_of(p) for p in sorted(dist.iterdir()) if p.is_file()}
    wheels = [name for name in files if name.endswith(".whl")]
    stem = wheels[0].split("-")[0] + "-" + wheels[0].split("-")[1] if wheels else dist.name
    return stem, files


_IDENTITY = {
    "GIT_AUTHOR_NAME": "plan2flow",
    "GIT_AUTHOR_EMAIL": "plan2flow@localhost",
    "GIT_COMMITTER_NAME": "plan2flow",
    "GIT_COMMITTER_EMAIL": "plan2flow@localhost",
}


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **_IDENTITY}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


class DeployerAgent(AgentBlock):
    """Deploys a release to a directory, a virtual environment or a git repository."""

    _block_type_slug = "plan2flow-deployer"
    _block_type_name = "plan2flow Deployer"
    _description = "Deploys a release: a directory, a virtual environment, or a git repository."
    task_types: ClassVar[tuple[str, ...]] = ("deploy",)
    params_model: ClassVar[Any] = DeployParams
    required_inputs: ClassVar[tuple[str, ...]] = ("dist",)

    releases: str = ""
    """Where `directory` releases go when the task names no path (default: PLAN2FLOW_HOME)."""

    @refusing
    def execute(self, request: AgentRequest) -> AgentResult:
        params = DeployParams.model_validate(request.params, strict=False)
        dist = Path(request.inputs["dist"])
        name, files = _release(dist)
        target = getattr(self, f"_to_{params.target}")
        changed, detail = target(params, dist, name, files, request)
        record = {"release": name, "target": params.target, "changed": changed, "files": files}
        if "release" in request.outputs:
            Path(request.outputs["release"]).write_text(
                json.dumps({**record, "detail": detail}, indent=2, sort_keys=True) + "\n", "utf-8"
            )
        failed = detail.startswith(("refused", "failed"))
        return AgentResult(
            outcome=Outcome.FAILED if failed else Outcome.SUCCEEDED,
            outputs={"release": request.outputs["release"]} if "release" in request.outputs else {},
            metrics={"changed": float(changed), "dry_run": float(params.dry_run)},
            findings=[detail] if failed else [],
            log_excerpt=detail,
        )

    def _default_root(self) -> Path:
        from plan2flow.home import plan2flow_home

        return Path(self.releases) if self.releases else plan2flow_home() / "releases"

    def _to_directory(
        self, params: DeployParams, dist: Path, name: str, files: dict[str, str], request: Any
    ) -> tuple[bool, str]:
        folder = inside(Path(params.path or self._default_root()), name)
        manifest = folder / "manifest.json"
        wanted = {"release": name, "files": files}
        if manifest.exists() and json.loads(manifest.read_text("utf-8")) == wanted:
            return False, f"unchanged: {folder}"
        if params.dry_run:
            return True, f"would write {len(files)} files to {folder}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Staged beside the release and renamed into place: a reader never sees half a release.
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder.parent))
        for file in files:
            shutil.copyfile(dist / file, staging / file)
        (staging / "manifest.json").write_text(
            json.dumps(wanted, indent=2, sort_keys=True) + "\n", "utf-8"
        )
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(staging, folder)
        return True, f"released {name} to {folder}"

    def _to_venv(
        self, params: DeployParams, dist: Path, name: str, files: dict[str, str], request: Any
    ) -> tuple[bool, str]:
        venv = Path(params.path or Path(request.workspace) / "venv")
        wheels = sorted(f for f in files if f.endswith(".whl"))
        if not wheels:
            return False, "failed: the release has no wheel to install"
        python = venv / "bin" / "python"
        if params.dry_run:
            return True, f"would install {wheels[0]} into {venv}"
        if not python.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True
            )
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
             "--force-reinstall", str(dist / wheels[0])],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            return True, "failed: pip install: " + (done.stderr.strip().splitlines() or ["?"])[-1]
        if params.smoke_command:
            env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
            smoke = subprocess.run(
                params.smoke_command, env=env, capture_output=True, text=True, check=False
            )
            if smoke.returncode != 0:
                return (
                    True,
                    f"failed: smoke command exited {smoke.returncode}: {smoke.stderr.strip()}",
                )
            return True, f"installed {wheels[0]} into {venv}; smoke: {smoke.stdout.strip()}"
        return True, f"installed {wheels[0]} into {venv}"

    def _to_git(
        self, params: DeployParams, dist: Path, name: str, files: dict[str, str], request: Any
    ) -> tuple[bool, str]:
        if not params.path:
            return False, "refused: a git target needs params.path"
        repo = Path(params.path)
        bare = _git(["rev-parse", "--is-bare-repository"], repo).stdout.strip() == "true"
        work = Path(tempfile.mkdtemp(dir=request.workspace)) / "clone" if bare else repo
        if bare and _git(["clone", "-q", str(repo), str(work)], Path(request.workspace)).returncode:
            return False, f"failed: cannot clone {repo}"
        if _git(["status", "--porcelain"], work).stdout.strip():
            return False, f"refused: {repo} has uncommitted changes"
        tag = f"release-{name}"
        folder = inside(work, "releases", name)
        for file in files:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dist / file, folder / file)
        if not _git(["status", "--porcelain"], work).stdout.strip():
            return False, f"unchanged: {tag} is already in {repo}"
        if params.dry_run:
            _git(["checkout", "--", "."], work)
            _git(["clean", "-fdq"], work)
            return True, f"would commit {len(files)} files and tag {tag} in {repo}"
        _git(["add", "releases"], work)
        committed = _git(["commit", "-q", "-m", f"Release {name}"], work)
        tagged = _git(["tag", "-f", tag], work)
        if committed.returncode or tagged.returncode:
            return True, "failed: " + (committed.stderr or tagged.stderr).strip()
        if bare and _git(["push", "-q", "--tags", "origin", "HEAD"], work).returncode:
            return True, f"failed: cannot push to {repo}"
        return True, f"committed and tagged {tag} in {repo}"
