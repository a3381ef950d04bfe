"""`plan2flow artifacts list|show|get|rm|gc`: outputs and exit statuses in-process (CliRunner),
on SQLite and PostgreSQL, and the entry point's one-line errors."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from artifact_stores import journal, store
from audit_db import Journal
from typer.testing import CliRunner

from plan2flow.cli import app, part_error
from plan2flow.memory.artifact_meta import Producer
from plan2flow.memory.artifacts import ArtifactStore
from plan2flow.memory.blobs_local import LocalBlobStore
from plan2flow.memory.errors import (
    ArtifactNotFound,
    BlobCorrupted,
    MemoryStoreError,
    TenantError,
    UnsafeArchive,
)

__all__ = ["journal", "store"]  # the fixtures


def cli(journal: Journal, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=journal.environ)


def ok(journal: Journal, *args: str) -> Any:
    result = cli(journal, *args)
    assert (result.exit_code, result.exception) == (0, None), result.output
    return result


def failed(journal: Journal, error: type[BaseException], status: int, *args: str) -> str:
    """Run a command that fails with a part's `error`, ending (through main) with `status`."""
    result = cli(journal, *args)
    assert isinstance(result.exception, error), (result.exception, result.output)
    assert result.exit_code == 1  # CliRunner's; main() turns it into the part's status
    assert part_error(result.exception) == status
    return str(result.exception)


def usage(journal: Journal, *args: str) -> str:
    """Run a command refused by the command line itself: status 2 and one line on stderr."""
    result = cli(journal, *args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    return str(result.stderr)


@pytest.fixture
def filled(store: ArtifactStore, tmp_path: Path) -> list[Any]:
    """Three artifacts of acme: a wheel, a directory and a log, oldest first."""
    tree = tmp_path / "site"
    (tree / "css").mkdir(parents=True)
    (tree / "index.html").write_text("<h1>hi</h1>\n")
    (tree / "css" / "main.css").write_text("h1 {}\n")
    return [
        store.put(
            b"wheel bytes",
            name="pkg-1.0-py3-none-any.whl",
            kind="wheel",
            producer=Producer(plan="etl", task_id="build"),
            labels={"team": "data"},
        ),
        store.put(tree, producer=Producer(plan="etl", task_id="site")),
        store.put(b"line 1\n", name="run.log", producer=Producer(plan="web", task_id="build")),
    ]


def test_list_shows_a_table_a_json_page_and_the_next_cursor(
    journal: Journal, filled: list[Any]
) -> None:
    result = ok(journal, "artifacts", "list")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "created", "size", "kind", "name", "plan/task"]
    assert [line.split()[0] for line in lines[1:]] == [str(r.id) for r in reversed(filled)]
    assert "pkg-1.0-py3-none-any.whl" in lines[3] and "etl/build" in lines[3]
    assert result.stderr == ""

    first = json.loads(ok(journal, "artifacts", "list", "-n", "2", "-f", "json").stdout)
    assert [a["id"] for a in first["artifacts"]] == [str(filled[2].id), str(filled[1].id)]
    assert first["artifacts"][0]["content_digest"] == filled[2].content_digest
    page = ok(journal, "artifacts", "list", "-n", "2", "-f", "json", "--after", first["next"])
    rest = json.loads(page.stdout)
    assert ([a["id"] for a in rest["artifacts"]], rest["next"]) == ([str(filled[0].id)], None)
    text = ok(journal, "artifacts", "list", "-n", "2")
    assert text.stderr == f"more: --after {first['next']}\n"


@pytest.mark.slow
def test_list_filters(journal: Journal, filled: list[Any]) -> None:
    def ids(*args: str) -> list[str]:
        result = ok(journal, "artifacts", "list", "-f", "json", *args)
        return [a["id"] for a in json.loads(result.stdout)["artifacts"]]

    wheel, site, log = (str(r.id) for r in filled)
    assert ids("--plan", "etl") == [site, wheel]
    assert ids("--task", "build") == [log, wheel]
    assert ids("--kind", "directory") == [site]
    assert ids("--label", "team=data") == [wheel]
    assert ids("--label", "team=data", "--label", "tier=gold") == []
    assert ids("--name", "run") == [log]
    assert ids("--since", "1h") == [log, site, wheel]
    assert ids("--since", "2999-01-01T00:00:00Z") == []
    assert ids("--run", str(uuid.uuid4())) == []
    assert ids("--tenant", journal.globex) == []
    empty = ok(journal, "artifacts", "list", "--plan", "none")
    assert (empty.stdout, empty.stderr) == ("", "no artifacts\n")


def test_list_usage_errors(journal: Journal) -> None:
    assert usage(journal, "artifacts", "list", "--since", "yesterday").startswith(
        "plan2flow: --since 'yesterday': not a time"
    )
    assert "is not a run id" in usage(journal, "artifacts", "list", "--run", "r1")
    assert "not key=value" in failed(
        journal, MemoryStoreError, 2, "artifacts", "list", "--label", "team"
    )
    assert "cursor 'abc' is not one" in failed(
        journal, MemoryStoreError, 2, "artifacts", "list", "--after", "abc"
    )
    assert "1 to 1000" in failed(journal, MemoryStoreError, 2, "artifacts", "list", "-n", "0")
    assert "not a DNS label" in failed(
        journal, TenantError, 2, "artifacts", "list", "--tenant", "Not_A_Label"
    )
    assert "plan2flow tenants create" in failed(
        journal, TenantError, 2, "artifacts", "list", "--tenant", "nobody-here"
    )


def test_show_as_a_table_and_as_json(journal: Journal, filled: list[Any]) -> None:
    wheel = filled[0]
    table = ok(journal, "artifacts", "show", str(wheel.id)).stdout
    rows = dict(line.split(None, 1) for line in table.splitlines() if len(line.split()) > 1)
    assert rows["id"].strip() == str(wheel.id)
    assert rows["digest"].strip() == wheel.digest
    assert rows["labels"].strip() == "team=data"
    shown = json.loads(ok(journal, "artifacts", "show", wheel.digest, "-f", "json").stdout)
    assert shown["id"] == str(wheel.id) and shown["media_type"] == "application/zip"
    assert "wrapped_key" not in shown
    missing = str(uuid.uuid4())
    assert missing in failed(journal, ArtifactNotFound, 2, "artifacts", "show", missing)
    assert "neither an artifact id" in failed(
        journal, ArtifactNotFound, 2, "artifacts", "show", "nope"
    )
    other = ["artifacts", "show", str(wheel.id), "--tenant", journal.globex]
    failed(journal, ArtifactNotFound, 2, *other)


def test_get_writes_files_and_unpacks_directories(
    journal: Journal, filled: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, site, _ = filled
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = ok(journal, "artifacts", "get", str(wheel.id))
    assert (work / "pkg-1.0-py3-none-any.whl").read_bytes() == b"wheel bytes"
    assert result.stderr.startswith(f"wrote wheel {wheel.id} (11 B) to pkg-1.0-py3-none-any.whl")
    ok(journal, "artifacts", "get", str(site.id), "-o", str(work / "out" / "site"))
    assert (work / "out" / "site" / "css" / "main.css").read_text() == "h1 {}\n"
    assert "exists: a directory artifact goes to a new or empty directory" in failed(
        journal, MemoryStoreError, 2, "artifacts", "get", str(site.id), "-o", "out/site"
    )
    assert "empty path" in usage(journal, "artifacts", "get", str(site.id), "-o", "")
    assert sorted(p.name for p in work.iterdir()) == ["out", "pkg-1.0-py3-none-any.whl"]


def test_get_refuses_a_corrupted_blob_and_an_unsafe_archive_with_status_5(
    journal: Journal, store: ArtifactStore, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        member = tarfile.TarInfo("/etc/cron.d/owned")
        member.size = 1
        tar.addfile(member, io.BytesIO(b"x"))
    crafted = store.put(buffer.getvalue(), name="crafted.tar", kind="directory")
    target = tmp_path / "unpacked"
    failed(journal, UnsafeArchive, 5, "artifacts", "get", str(crafted.id), "-o", str(target))
    plain = store.put(b"original", name="plain.txt")
    assert isinstance(store.blobs, LocalBlobStore)
    blob = store.blobs.path(journal.acme, plain.digest)
    blob.chmod(0o600)
    blob.write_bytes(b"tampered")
    failed(journal, BlobCorrupted, 5, "artifacts", "get", str(plain.id), "-o", str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


@pytest.mark.slow
def test_rm_then_gc(journal: Journal, filled: list[Any], store: ArtifactStore) -> None:
    wheel, site, log = filled
    assert ok(journal, "artifacts", "rm", str(log.id)).stdout == (
        f"deleted artifact {log.id} (run.log)\n"
    )
    failed(journal, ArtifactNotFound, 2, "artifacts", "rm", str(log.id))
    plan = json.loads(
        ok(journal, "artifacts", "gc", "--grace", "0s", "--dry-run", "-f", "json").stdout
    )
    assert plan == {
        "dry_run": True,
        "expired": [],
        "retired": [],
        "blobs": [log.digest],
        "freed_bytes": log.size,
        "temporaries": [],
    }
    assert store.blobs.exists(journal.acme, log.digest)
    done = ok(journal, "artifacts", "gc", "--grace", "0s", "--keep-last", "0").stdout
    assert done.splitlines() == [
        "deleted 0 expired artifacts, 2 by retention",
        f"deleted 3 unreferenced blobs ({(wheel.size + site.size + log.size) / 1024:.1f} KiB)",
        "removed 0 stale temporaries",
    ]
    assert store.search().records == []
    young = store.put(b"young", name="young.txt", expires=dt.timedelta(days=1))
    assert ok(journal, "artifacts", "gc", "--older-than", "30d").stdout.startswith(
        "deleted 0 expired artifacts, 0 by retention"
    )
    assert [r.id for r in store.search().records] == [young.id]
    assert "duration '1 day' is not" in usage(journal, "artifacts", "gc", "--older-than", "1 day")
    assert "--grace" in usage(journal, "artifacts", "gc", "--grace", "soon")
    assert cli(journal, "artifacts", "gc", "--keep-last", "-1").exit_code == 2


@pytest.mark.slow
def test_main_prints_one_line_and_exits_with_the_status(journal: Journal) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from plan2flow.cli import main; main()",
            "artifacts",
            "show",
            str(uuid.uuid4()),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **journal.environ},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("plan2flow: no artifact ")
    assert len(done.stderr.strip().splitlines()) == 1
