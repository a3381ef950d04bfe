"""The GitHub Actions review workflow, run for real: its shell steps in a git repository made for
each test, with a base branch and a pull-request branch, as a runner would run them.

Steps that use an action (checkout, setup-python, upload-sarif, the sticky comment) are what
GitHub provides; the test plays their part (the clone, `.venv/bin` on PATH) and checks the files
they would receive. `pip install plan2flow` is replaced by the checkout's own `.venv/bin`. Every
other `run:` step is executed in order with bash as GitHub runs it (`bash --noprofile --norc -eo
pipefail`), with `${{ ... }}` replaced by test values.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from plan2flow.compiler import compile_plan
from plan2flow.compiler.review.diff import diff_graphs
from plan2flow.compiler.review.diff_format import format_markdown

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
WORKFLOW = ROOT / "deploy" / "ci" / "github-actions" / "plan2flow-review.yml"
REVIEW = ROOT / "tests" / "review"
HELLO = ROOT / "examples" / "plans" / "hello.yaml"
BIN = Path(sys.executable).parent

EXPRESSIONS = {
    "github.base_ref": "main",
    "github.server_url": "https://github.example",
    "github.repository": "acme/plans",
    "github.run_id": "42",
}
"""Test values of the expressions the shell steps use; an unknown one fails the test."""

MARKER = "<!-- plan2flow-review -->\n"


def _substitute(text: str) -> str:
    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        assert expression in EXPRESSIONS, f"no test value for ${{{{ {expression} }}}}"
        return EXPRESSIONS[expression]

    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", value, text)


def _workflow() -> dict[Any, Any]:
    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=_git_env(), check=True, capture_output=True, text=True
    ).stdout


def _git_env() -> dict[str, str]:
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Reviewer",
        "GIT_AUTHOR_EMAIL": "reviewer@example.com",
        "GIT_COMMITTER_NAME": "Reviewer",
        "GIT_COMMITTER_EMAIL": "reviewer@example.com",
    }


def _write(repo: Path, files: dict[str, str | None]) -> None:
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def _commit(repo: Path, message: str, files: dict[str, str | None], plans: list[str]) -> None:
    """Write the files, compile the plans in place (the committed outputs), and commit all."""
    _write(repo, files)
    for plan in plans:
        subprocess.run(
            [str(BIN / "plan2flow"), "compile", plan],
            cwd=repo,
            env=_git_env(),
            check=True,
            capture_output=True,
        )
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "-m", message)


def pull_request(
    tmp_path: Path,
    base: dict[str, str | None],
    head: dict[str, str | None],
    compile_base: list[str],
    compile_head: list[str],
) -> Path:
    """A clone checked out on a pull-request branch: origin/main holds `base`, HEAD `head`."""
    origin = tmp_path / "origin"
    origin.mkdir()
    _git(origin, "init", "--quiet", "--initial-branch=main")
    _commit(origin, "base", base, compile_base)
    _git(tmp_path, "clone", "--quiet", str(origin), "checkout")
    checkout = tmp_path / "checkout"
    _git(checkout, "switch", "--quiet", "--create", "change")
    _commit(checkout, "head", head, compile_head)
    return checkout


@dataclasses.dataclass
class Ran:
    name: str
    status: int
    output: str


def run_steps(
    repo: Path,
    tmp_path: Path,
    overrides: dict[str, str] | None = None,
    only: str | None = None,
) -> list[Ran]:
    """Every `run:` step of the review job (or the one named ``only``), in order, as the runner
    would run it."""
    workflow = _workflow()
    job = workflow["jobs"]["review"]
    summary = tmp_path / "step-summary.md"
    base_env = {
        **_git_env(),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_BASE_REF": EXPRESSIONS["github.base_ref"],
        "GITHUB_WORKSPACE": str(repo),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    for scope in (workflow.get("env") or {}, job.get("env") or {}):
        base_env.update({k: _substitute(str(v)) for k, v in scope.items()})
    ran = []
    for number, step in enumerate(job["steps"]):
        if "uses" in step or "pip install plan2flow" in step["run"]:
            continue
        if only is not None and step["name"] != only:
            continue
        script = tmp_path / f"step-{number}.sh"
        script.write_text(_substitute(step["run"]), encoding="utf-8")
        env = {**base_env, **{k: _substitute(str(v)) for k, v in (step.get("env") or {}).items()}}
        env.update(overrides or {})
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
        )
        ran.append(Ran(step["name"], done.returncode, done.stdout + done.stderr))
    return ran


def _statuses(ran: list[Ran]) -> dict[str, int]:
    return {step.name: step.status for step in ran}


def _document(path: Path, name: str) -> dict[str, Any]:
    return compile_plan(path.read_bytes(), name).graph.document


def _review_files(head: bool) -> dict[str, str | None]:
    source = REVIEW / ("head.yaml" if head else "base.yaml")
    return {"plans/release.yaml": source.read_text(encoding="utf-8")}


def test_workflow_is_shaped_as_documented() -> None:
    workflow = _workflow()
    assert workflow[True] == {  # YAML 1.1 reads the key `on` as true
        "pull_request": {"paths": ["**.yaml", "**.yml", "**.taskgraph.json", "**_flow.py"]}
    }
    assert workflow["permissions"] == {}
    assert workflow["defaults"] == {"run": {"shell": "bash"}}
    job = workflow["jobs"]["review"]
    assert job["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "security-events": "write",
    }
    uses = {step["uses"].split("@")[0]: step for step in job["steps"] if "uses" in step}
    assert list(uses) == [
        "actions/checkout",
        "actions/setup-python",
        "github/codeql-action/upload-sarif",
        "marocchino/sticky-pull-request-comment",
    ]
    assert uses["actions/checkout"]["with"] == {"fetch-depth": 0}
    assert uses["github/codeql-action/upload-sarif"]["with"]["sarif_file"] == "plan2flow.sarif"
    assert uses["marocchino/sticky-pull-request-comment"]["with"]["path"] == "plan2flow-review.md"
    install = [s for s in job["steps"] if "pip install plan2flow" in s.get("run", "")]
    assert len(install) == 1


def test_changed_added_and_deleted_plans_are_validated_checked_and_diffed(tmp_path: Path) -> None:
    hello = HELLO.read_text(encoding="utf-8")
    repo = pull_request(
        tmp_path,
        base={
            **_review_files(head=False),
            "plans/retired.yaml": hello.replace("name: hello", "name: retired"),
            "config/settings.yaml": "retries: 1\n",
        },
        head={
            **_review_files(head=True),
            "plans/hello.yaml": hello,
            "plans/retired.yaml": None,
            "plans/retired.taskgraph.json": None,
            "plans/retired_flow.py": None,
            "config/settings.yaml": "retries: 2\n",
        },
        compile_base=["plans/release.yaml", "plans/retired.yaml"],
        compile_head=["plans/release.yaml", "plans/hello.yaml"],
    )

    ran = run_steps(repo, tmp_path)

    assert _statuses(ran) == {
        "Find changed plans": 0,
        "Validate changed plans": 0,
        "Check committed TaskGraphs and flow modules": 0,
        "Diff changed plans against the base branch": 0,
    }, [step.output for step in ran]
    assert (repo / "changed-plans.txt").read_text(encoding="utf-8") == (
        "plans/hello.yaml\nplans/release.yaml\nplans/retired.yaml\n"
    )
    sarif = json.loads((repo / "plan2flow.sarif").read_text(encoding="utf-8"))
    assert sarif["version"] == "2.1.0"
    assert sarif["runs"][0]["tool"]["driver"]["name"] == "plan2flow"
    assert sarif["runs"][0]["results"] == []

    release = format_markdown(
        diff_graphs(
            _document(REVIEW / "base.yaml", "plans/release.yaml"),
            _document(REVIEW / "head.yaml", "plans/release.yaml"),
        ),
        "origin/main:plans/release.yaml",
        "plans/release.yaml",
    )
    comment = (repo / "plan2flow-review.md").read_text(encoding="utf-8")
    assert comment.startswith(MARKER)
    sections = comment.removeprefix(MARKER).split("\n### ")
    assert len(sections) == 3
    added, changed, deleted = sections
    assert added.startswith("### plan2flow diff: `hello`\n")
    assert "| Tasks | 3 | 0 | 0 | 0 | 0 |" in added
    assert "| Graph hash | `(missing)` |" in added
    assert "### " + changed == release
    assert deleted.startswith("plan2flow diff: `retired`\n")
    assert "| Tasks | 0 | 3 | 0 | 0 | 0 |" in deleted
    assert "```mermaid\n" in deleted
    assert (tmp_path / "step-summary.md").read_text(encoding="utf-8") == comment


def test_invalid_plan_fails_validation_with_sarif_and_shows_diagnostics_in_comment(
    tmp_path: Path,
) -> None:
    broken = (
        (REVIEW / "head.yaml")
        .read_text(encoding="utf-8")
        .replace("depends_on: [test]", "depends_on: [tests]")
    )
    repo = pull_request(
        tmp_path,
        base=_review_files(head=False),
        head={"plans/release.yaml": broken},
        compile_base=["plans/release.yaml"],
        compile_head=[],
    )

    ran = run_steps(repo, tmp_path)

    assert _statuses(ran) == {
        "Find changed plans": 0,
        "Validate changed plans": 1,
        "Check committed TaskGraphs and flow modules": 1,
        "Diff changed plans against the base branch": 1,
    }
    sarif = json.loads((repo / "plan2flow.sarif").read_text(encoding="utf-8"))
    results = sarif["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["P2F202"]
    location = results[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "plans/release.yaml"
    line = broken.splitlines().index("    depends_on: [tests]") + 1
    assert location["region"]["startLine"] == line
    comment = (repo / "plan2flow-review.md").read_text(encoding="utf-8")
    assert comment.startswith(
        MARKER + "### plan2flow diff: `plans/release.yaml` cannot be compared"
    )
    column = broken.splitlines()[line - 1].index("tests") + 1
    assert (
        f"```text\nplans/release.yaml:{line}:{column}: P2F202 error: "
        "task 'publish' depends on unknown task 'tests'\n"
    ) in comment
    assert "plan2flow: origin/main:plans/release.yaml" not in comment
    assert "plan2flow: plans/release.yaml: not a valid plan; nothing to compare" in comment


def test_long_plans_are_found_changed_and_deleted(tmp_path: Path) -> None:
    """Longer than a pipe's buffer: a `printf | grep -q` under pipefail, where grep stops at the
    first line, got SIGPIPE on the writer and skipped the plan (seen as a flaky test)."""
    hello = HELLO.read_text(encoding="utf-8")
    comments = "".join(f"# note {n:06d}: {'x' * 60}\n" for n in range(2000))  # ~150 KB
    base = {
        "plans/long.yaml": hello.replace("name: hello", "name: long") + comments,
        "plans/gone.yaml": hello.replace("name: hello", "name: gone") + comments,
    }
    head: dict[str, str | None] = {
        "plans/long.yaml": hello.replace("name: hello", "name: long") + comments + "# more\n",
        "plans/gone.yaml": None,
    }
    repo = pull_request(tmp_path, base=base, head=head, compile_base=[], compile_head=[])

    ran = run_steps(repo, tmp_path, only="Find changed plans")

    assert [step.status for step in ran] == [0], [step.output for step in ran]
    assert (repo / "changed-plans.txt").read_text(encoding="utf-8") == (
        "plans/gone.yaml\nplans/long.yaml\n"
    )


def test_pull_request_without_plan_changes_says_so(tmp_path: Path) -> None:
    repo = pull_request(
        tmp_path,
        base={**_review_files(head=False), "config/settings.yaml": "retries: 1\n"},
        head={"config/settings.yaml": "retries: 2\n"},
        compile_base=["plans/release.yaml"],
        compile_head=[],
    )

    ran = run_steps(repo, tmp_path)

    assert all(step.status == 0 for step in ran), [step.output for step in ran]
    assert (repo / "changed-plans.txt").read_text(encoding="utf-8") == ""
    assert not (repo / "plan2flow.sarif").exists()
    assert "No changed plan to validate." in ran[1].output
    assert (repo / "plan2flow-review.md").read_text(encoding="utf-8") == (
        MARKER + "No plan2flow plan changed in this pull request.\n"
    )


def test_review_too_long_for_a_comment_links_to_the_job_summary(tmp_path: Path) -> None:
    repo = pull_request(
        tmp_path,
        base=_review_files(head=False),
        head=_review_files(head=True),
        compile_base=["plans/release.yaml"],
        compile_head=["plans/release.yaml"],
    )

    ran = run_steps(repo, tmp_path, overrides={"COMMENT_LIMIT": "1000"})

    assert ran[-1].status == 0, ran[-1].output
    summary = (tmp_path / "step-summary.md").read_text(encoding="utf-8")
    assert len(summary) > 1000
    assert "| Tasks | 2 | 1 | 1 | 1 | 2 |" in summary
    assert (repo / "plan2flow-review.md").read_text(encoding="utf-8") == (
        MARKER + "The plan2flow review is too long for a comment: see the summary of "
        "[this run](https://github.example/acme/plans/actions/runs/42).\n"
    )
