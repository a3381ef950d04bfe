"""A real Prometheus on 127.0.0.1 scrapes the budget gauges read from project memory and
evaluates deploy/observability/alerts.yml: a spent plan budget fires ``Plan2flowBudgetSpent``,
a tenant budget past 80 % makes ``Plan2flowBudgetBurning`` pending (it fires after 5 minutes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from support import free_port, need_service
from test_observability_prometheus import DEPLOY, alerts, poll

from plan2flow.memory import budgets
from plan2flow.memory.costs import charge_compute
from plan2flow.memory.db.engine import configured_database
from plan2flow.observability.budgets import register_budgets
from plan2flow.observability.serve import MetricsServer


def _alert(api: str, name: str, state: str) -> list[dict[str, Any]]:
    return [a for a in alerts(api) if a["labels"]["alertname"] == name and a["state"] == state]


@pytest.mark.slow
def test_the_budget_alerts_in_a_real_prometheus(tmp_path: Path, run_home: Path) -> None:
    need_service(shutil.which("prometheus") is not None, "prometheus (Debian) is missing")
    database = configured_database()
    budgets.set_budget(database, "default", scope="tenant", name="", usd=10, period="month")
    budgets.set_budget(database, "default", scope="plan", name="etl", usd=1, period="day")
    charge_compute(
        database, "default", plan="etl", run_id="r1", task_id="t", attempt=1, seconds=60, usd=1.5
    )
    registry = CollectorRegistry()
    register_budgets(registry, database)
    server = MetricsServer(registry)
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
    api = f"http://127.0.0.1:{port}/api/v1"
    with (tmp_path / "prometheus.log").open("wb") as log:
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
        try:
            (spent,) = poll(
                lambda: _alert(api, "Plan2flowBudgetSpent", "firing"), "the spent budget's page"
            )
            assert spent["labels"] == {
                "alertname": "Plan2flowBudgetSpent",
                "instance": f"127.0.0.1:{server.port}",
                "job": "plan2flow",
                "period": "day",
                "plan": "etl",
                "scope": "plan",
                "severity": "page",
                "tenant": "default",
            }
            assert not _alert(api, "Plan2flowBudgetBurning", "pending")  # the tenant: 15 %
            charge_compute(
                database,
                "default",
                plan="blog",
                run_id="r2",
                task_id="t",
                attempt=1,
                seconds=60,
                usd=7.0,
            )
            (burning,) = poll(
                lambda: _alert(api, "Plan2flowBudgetBurning", "pending"), "the tenant's burn"
            )
            assert (burning["labels"]["scope"], burning["labels"]["tenant"]) == (
                "tenant",
                "default",
            )
            assert burning["annotations"]["summary"] == (
                "budget of tenant default: 85% spent this month"
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
            server.close()
            database.dispose()
