"""ECS log lines: one JSON object per record with the run's ids, secrets never written; checked
on the lines of a real ``plan2flow run`` against the session's Prefect API."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plan2flow.observability import logs
from plan2flow.observability.secrets import (
    KnownSecrets,
    is_secret_name,
    process_secrets,
    secret_values,
)

SECRET_PARAM = "tok-param-Zq81xv"
SECRET_ENV = "pw-env-Hh27kk"
PLAN = f"""\
apiVersion: plan2flow/v1
kind: Plan
metadata: {{name: secretive}}
params:
  api_token: {{type: string, default: "{SECRET_PARAM}"}}
tasks:
  - id: leak
    type: shell
    params:
      shell: true
      argv: ['echo "token ${{{{ params.api_token }}}} pw $MY_SERVICE_PASSWORD" >&2; exit 1']
  - {{id: after, type: noop, depends_on: [leak]}}
  - id: fine
    type: shell
    params: {{argv: [echo, ok]}}
"""


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_ecs_line_with_the_bound_ids_and_secrets_masked() -> None:
    stream = io.StringIO()
    secrets = KnownSecrets(["hunter2-long"])
    logger = logging.getLogger("plan2flow.test.ecs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logs.ecs_handler(stream, secrets)
    logger.addHandler(handler)
    try:
        with logs.bound(correlation_id="run-1", tenant="acme", plan="etl", graph_hash="sha256:1"):
            with logs.bound(task_id="load", attempt=2), logs.traced("ab" * 16, "cd" * 8):
                logger.warning("password is %s, key sk-%s", "hunter2-long", "x" * 20)
            logger.info("after the task")
        try:
            raise ValueError("OPENAI_API_KEY=abcdefgh1234 in the traceback")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second, third = _lines(stream)
    assert first["ecs.version"] and first["log.level"] == "warning"
    assert first["plan2flow"] == {
        "correlation_id": "run-1",
        "tenant": "acme",
        "plan": "etl",
        "graph_hash": "sha256:1",
        "task_id": "load",
        "attempt": 2,
    }
    assert first["trace"] == {"id": "ab" * 16} and first["span"] == {"id": "cd" * 8}
    assert first["message"] == "password is [REDACTED], key [REDACTED]"
    assert second["plan2flow"] == {
        "correlation_id": "run-1",
        "tenant": "acme",
        "plan": "etl",
        "graph_hash": "sha256:1",
    }
    assert "trace" not in second
    assert "abcdefgh1234" not in stream.getvalue()
    assert "plan2flow" not in third
    assert "[REDACTED]" in json.dumps(third["error"])


def test_secret_names_and_values() -> None:
    assert is_secret_name("GITHUB_TOKEN") and is_secret_name("api_key")
    assert not is_secret_name("who")
    assert secret_values({"DB_PASSWORD": "s3cret-pw", "HOME": "/root", "X_TOKEN": "1"}) == {
        "s3cret-pw"
    }
    masked = KnownSecrets(['quo"te-secret']).mask(json.dumps({"m": 'a quo"te-secret b'}))
    assert "quo" not in masked and json.loads(masked) == {"m": "a [REDACTED] b"}


def test_install_replaces_stream_handlers_once() -> None:
    logger = logging.getLogger("plan2flow.test.install")
    original = logging.StreamHandler(io.StringIO())
    logger.addHandler(original)
    try:
        assert logs.install(["plan2flow.test.install"])
        assert original not in logger.handlers
        assert not logs.install(["plan2flow.test.install"])
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
    assert process_secrets() is process_secrets()


@pytest.mark.slow
def test_every_line_of_a_real_run_is_ecs_with_its_ids_and_no_secret(
    tmp_path: Path, run_home: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    plan = tmp_path / "secretive.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PLAN2FLOW_LOG_FORMAT": "ecs",
        "MY_SERVICE_PASSWORD": SECRET_ENV,
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "plan2flow"), "run", str(plan)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    run_id = next(
        line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("flow run:")
    )
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert len(records) >= 10
    task_ids = set()
    for record in records:
        assert record["ecs.version"] and record["@timestamp"] and record["log.level"]
        ids = record["plan2flow"]
        assert ids["correlation_id"] == run_id, record
        assert ids["plan"] == "secretive" and ids["graph_hash"].startswith("sha256:")
        if "task_id" in ids:
            task_ids.add(ids["task_id"])
            assert ids["attempt"] == 1
    assert task_ids == {"leak", "after", "fine"}
    assert any("[REDACTED]" in record["message"] for record in records)
    for secret in (SECRET_PARAM, SECRET_ENV):  # the logs; the summary on stdout is the CLI's
        assert secret not in done.stderr
