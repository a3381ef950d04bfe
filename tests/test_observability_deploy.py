"""deploy/observability/ loaded by the real programs: promtool checks and unit-tests the alert
rules (every alert with series that fire and series that do not) and the Prometheus config;
every query of the Grafana dashboard is valid PromQL and names series a real run exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from support import build_module, import_flow, plan_text

from plan2flow.events import process_bus
from plan2flow.flows import runtime
from plan2flow.observability.budgets import BudgetCollector
from plan2flow.observability.feed import follow, settle
from plan2flow.observability.metrics import RunMetrics, StreamCollector

DEPLOY = Path(__file__).parents[1] / "deploy" / "observability"
GRAFANA_MACROS = {"$__rate_interval": "5m", "$__range": "1h", "$plan": ".*"}
METRIC = re.compile(r"\b(plan2flow_[a-z0-9_]+)")


def promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    from support import need_service

    need_service(shutil.which("promtool") is not None, "promtool (Debian: prometheus) is missing")
    return subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
def test_the_alert_rules_load_and_pass_their_unit_tests() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    tested = promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    cases = yaml.safe_load((DEPLOY / "alerts.test.yml").read_text())["tests"]
    fires, quiet = set(), set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fires == alerts and quiet == alerts


@pytest.mark.slow
def test_a_wrong_expectation_fails_the_unit_tests(tmp_path: Path) -> None:
    shutil.copy(DEPLOY / "alerts.yml", tmp_path)
    text = (DEPLOY / "alerts.test.yml").read_text()
    (tmp_path / "alerts.test.yml").write_text(text.replace("plan etl: 50%", "plan etl: 40%"))
    tested = promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert tested.returncode == 1 and "FAILED" in tested.stdout + tested.stderr


def test_the_prometheus_config_loads() -> None:
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            query = target["expr"]
            for macro, value in GRAFANA_MACROS.items():
                query = query.replace(macro, value)
            queries.append(query)
    return queries


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": query}
                    for i, query in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", "dashboard.rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def exposed_names(exposition: str) -> set[str]:
    """Every series name the registry's text can give, from its ``# TYPE`` lines."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "counter":
                names.add(f"{name}_total")
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


@pytest.mark.slow
def test_the_dashboard_names_series_a_real_run_exposes(tmp_path: Path, run_home: Path) -> None:
    metrics = RunMetrics()
    # The JetStream side (DLQ, consumers) is read from NATS at each scrape: declared, no sample.
    metrics.registry.register(StreamCollector(lambda: None))
    # Budgets are read from project memory at each scrape: declared, no sample without one.
    metrics.registry.register(BudgetCollector(list))
    subscription = follow(process_bus(), metrics)
    tasks = """\
  - id: extract
    type: shell
    params: {shell: true, argv: ['printf rows > "${{ outputs.raw }}"']}
    outputs: [raw]
  - {id: broken, type: shell, depends_on: [extract], params: {argv: ['false']}}
"""
    try:
        flow = import_flow(build_module(tmp_path / "build", plan_text("shown", tasks)))
        with runtime.options(runtime.RunOptions(no_cache=True)):
            flow(return_state=True)
        assert settle(metrics, 30)
    finally:
        subscription.close()
    exposition = metrics.exposition().decode()
    names = exposed_names(exposition)
    wanted = {name for query in dashboard_queries() for name in METRIC.findall(query)}
    assert wanted - names == set()
    # What a run does has samples, not only a declaration.
    for sample in (
        'plan2flow_runs_total{plan="shown",state="failed"} 1.0',
        'plan2flow_task_runs_total{plan="shown",state="failed",type="shell"} 1.0',
        'plan2flow_run_duration_seconds_count{plan="shown",state="failed"} 1.0',
        'plan2flow_artifact_bytes_total{plan="shown"} 4.0',
    ):
        assert sample in exposition


def test_the_log_shippers_read_ndjson_files() -> None:
    filebeat = yaml.safe_load((DEPLOY / "filebeat.yml").read_text())
    (source,) = filebeat["filebeat.inputs"]
    assert source["parsers"] == [
        {
            "ndjson": {
                "target": "",
                "overwrite_keys": True,
                "add_error_key": True,
                "expand_keys": True,
            }
        }
    ]
    vector = yaml.safe_load((DEPLOY / "vector.yaml").read_text())
    assert vector["sinks"]["opensearch"]["inputs"] == ["plan2flow_ecs"]
    assert "parse_json(.message)" in vector["transforms"]["plan2flow_ecs"]["source"]
