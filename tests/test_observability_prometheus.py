"""A real Prometheus on 127.0.0.1 scrapes the metrics this process serves while a plan with a
failing task runs, evaluates deploy/observability/alerts.yml, and the failure alert reaches
``firing`` through Prometheus's HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support import build_module, free_port, import_flow, need_service, plan_text
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.events import process_bus
from plan2flow.flows import runtime
from plan2flow.observability.feed import follow
from plan2flow.observability.metrics import RunMetrics
from plan2flow.observability.serve import MetricsServer

DEPLOY = Path(__file__).parents[1] / "deploy" / "observability"
DEADLINE = 90.0
# The task fails once the test has seen Prometheus scrape the run's zero counters.
TASKS = """\
  - id: waits_then_fails
    type: shell
    params: {shell: true, argv: ['while [ ! -e "$GO" ]; do sleep 0.05; done; exit 1']}
"""


def poll(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            found = check()
        except (httpx.HTTPError, json.JSONDecodeError):  # not answering yet, or cut short
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, MetricsServer]]:
    """A Prometheus scraping a metrics server of this process every 0.5 s, with the alerts."""
    need_service(shutil.which("prometheus") is not None, "prometheus (Debian) is missing")
    metrics = RunMetrics()
    server = MetricsServer(metrics.registry, "127.0.0.1", 0)
    subscription = follow(process_bus(), metrics)
    shutil.copy(DEPLOY / "alerts.yml", tmp_path / "alerts.yml")
    config = {
        "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {"job_name": "plan2flow", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        poll(lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready").status_code == 200, "ready")
        yield api, server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        subscription.close()
        server.close()


def query(api: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{api}/query", params={"query": promql}, timeout=10)
    answer = response.raise_for_status().json()
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@pytest.mark.slow
def test_the_failure_alert_fires_in_a_real_prometheus(
    tmp_path: Path, run_home: Path, prometheus: tuple[str, MetricsServer], monkeypatch: Any
) -> None:
    api, _ = prometheus
    poll(lambda: query(api, 'up{job="plan2flow"} == 1'), "the first scrape")
    go = tmp_path / "go"
    monkeypatch.setenv("GO", str(go))
    flow = import_flow(build_module(tmp_path / "build", plan_text("alerting", TASKS)))
    ended: list[Any] = []

    def run() -> None:
        with runtime.options(runtime.RunOptions(no_cache=True)):
            ended.append(flow(return_state=True))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        failed = 'plan2flow_runs_total{plan="alerting",state="failed"}'
        poll(lambda: query(api, f"{failed} == 0"), "the run's zero counters")
        assert not [a for a in alerts(api) if a["labels"]["alertname"].startswith("Plan2flowRun")]
        go.touch()
    finally:
        thread.join(timeout=DEADLINE)
    summary = runtime.summary_of(ended[0])
    assert summary is not None and not summary.ok

    def firing() -> list[dict[str, Any]]:
        return [
            a
            for a in alerts(api)
            if a["labels"]["alertname"] == "Plan2flowRunFailureRateHigh" and a["state"] == "firing"
        ]

    (alert,) = poll(firing, "the alert to fire")
    assert alert["labels"]["plan"] == "alerting" and alert["labels"]["severity"] == "page"
    assert alert["annotations"]["summary"] == "plan alerting: 100% of runs failed (30 min)"
    # The plan's SLO, asked of the same Prometheus: its only run failed.
    plan = tmp_path / "alerting.yaml"
    plan.write_text(
        plan_text("alerting", TASKS, "slo: {success_ratio: 0.9, window: 1d}\n"), encoding="utf-8"
    )
    prometheus_url = api.removesuffix("/api/v1")
    reported = CliRunner().invoke(app, ["slo", "report", str(plan), "--prometheus", prometheus_url])
    assert reported.exit_code == 1, reported.output
    assert reported.stdout == (
        "alerting success 0.9 over 1d: 0.0000% good, NOT met, error budget left -900.0%\n"
    )


def alerts(api: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{api}/alerts", timeout=10).raise_for_status()
    found: list[dict[str, Any]] = response.json()["data"]["alerts"]
    return found
