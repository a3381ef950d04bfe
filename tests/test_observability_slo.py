"""SLOs: a plan's ``slo:`` section compiled into recording and multi-window, multi-burn-rate
alert rules that promtool loads and unit-tests (budgets burning fast page, slowly open a ticket,
a healthy plan stays quiet); a duration bound off the histogram's buckets is refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from support import need_service, plan_text
from typer.testing import CliRunner

from plan2flow.cli import app

runner = CliRunner()
SLO = """\
slo:
  success_ratio: 0.99
  run_duration: {seconds: 600, objective: 0.95}
  window: 28d
"""
PAGE = "too fast to wait"
TICKET = "faster than it lasts"


def write_rules(tmp_path: Path, slo: str = SLO) -> Path:
    plan = tmp_path / "nightly.yaml"
    plan.write_text(plan_text("nightly", "  - {id: a, type: noop}\n", slo), encoding="utf-8")
    rules = tmp_path / "slo.rules.yml"
    result = runner.invoke(app, ["slo", "rules", str(plan), "-o", str(rules)])
    assert result.exit_code == 0, result.output
    return rules


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    need_service(shutil.which("promtool") is not None, "promtool (Debian: prometheus) is missing")
    return subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def alert(sli: str, severity: str, objective: str, summary: str) -> dict[str, object]:
    return {
        "exp_labels": {
            "plan": "nightly",
            "slo": sli,
            "objective": objective,
            "window": "28d",
            "severity": severity,
        },
        "exp_annotations": {
            "summary": f"plan nightly: the {sli} SLO ({objective} over 28d) burns its error "
            f"budget {summary}"
        },
    }


def test_the_rules_load_in_promtool(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    checked = promtool("check", "rules", rules.name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 20 rules found" in checked.stdout  # 2 × (8 recording + 2 alerts)


@pytest.mark.slow
def test_burning_budgets_page_or_open_a_ticket_and_healthy_plans_stay_quiet(
    tmp_path: Path,
) -> None:
    write_rules(tmp_path)
    burn = "Plan2flowSloSuccessBudgetBurn"
    slow = "Plan2flowSloDurationBudgetBurn"
    tests = {
        "rule_files": ["slo.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                # 1 run in 5 fails (20 %): 14.4 × the 1 % budget over 1 h and 5 min: a page.
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'plan2flow_runs_total{plan="nightly",state="failed"}',
                        "values": "0+1x120",
                    },
                    {
                        "series": 'plan2flow_runs_total{plan="nightly",state="completed"}',
                        "values": "0+4x120",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "90m",
                        "alertname": burn,
                        "exp_alerts": [
                            alert("success", "page", "0.99", PAGE),
                            alert("success", "ticket", "0.99", TICKET),
                        ],
                    },
                ],
            },
            {
                # 1 run in 25 fails (4 %): below 6 × 1 % for a page, above 3 × for a ticket.
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'plan2flow_runs_total{plan="nightly",state="failed"}',
                        "values": "0+1x1500",
                    },
                    {
                        "series": 'plan2flow_runs_total{plan="nightly",state="completed"}',
                        "values": "0+24x1500",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "24h",
                        "alertname": burn,
                        "exp_alerts": [alert("success", "ticket", "0.99", TICKET)],
                    },
                ],
            },
            {
                # No failure, every run within 600 s: no alert of either SLO.
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'plan2flow_runs_total{plan="nightly",state="failed"}',
                        "values": "0x120",
                    },
                    {
                        "series": 'plan2flow_runs_total{plan="nightly",state="completed"}',
                        "values": "0+5x120",
                    },
                    {
                        "series": 'plan2flow_run_duration_seconds_bucket{plan="nightly",'
                        'state="completed",le="600.0"}',
                        "values": "0+5x120",
                    },
                    {
                        "series": 'plan2flow_run_duration_seconds_count{plan="nightly",'
                        'state="completed"}',
                        "values": "0+5x120",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "90m", "alertname": burn, "exp_alerts": []},
                    {"eval_time": "90m", "alertname": slow, "exp_alerts": []},
                ],
            },
            {
                # Half the runs take longer than 600 s: 10 × the 5 % budget: a page.
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'plan2flow_run_duration_seconds_bucket{plan="nightly",'
                        'state="completed",le="600.0"}',
                        "values": "0+2x120",
                    },
                    {
                        "series": 'plan2flow_run_duration_seconds_count{plan="nightly",'
                        'state="completed"}',
                        "values": "0+4x120",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "90m",
                        "alertname": slow,
                        "exp_alerts": [
                            alert("duration", "page", "0.95", PAGE),
                            alert("duration", "ticket", "0.95", TICKET),
                        ],
                    },
                ],
            },
        ],
    }
    (tmp_path / "slo.test.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    tested = promtool("test", "rules", "slo.test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_duration_bound_must_be_a_histogram_bucket(tmp_path: Path) -> None:
    plan = tmp_path / "odd.yaml"
    plan.write_text(
        plan_text("odd", "  - {id: a, type: noop}\n", "slo: {run_duration: {seconds: 700}}\n"),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["slo", "rules", str(plan)])
    assert result.exit_code == 2
    assert "run_duration.seconds 700 is not a bucket" in result.output


def test_an_invalid_slo_is_a_plan_error(tmp_path: Path) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text(
        plan_text("bad", "  - {id: a, type: noop}\n", "slo: {success_ratio: 1.5}\n"),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["slo", "rules", str(plan)])
    assert result.exit_code == 1
    assert "P2F1" in result.output and "/slo/success_ratio" in result.output


@pytest.mark.parametrize("text", ["", SLO])
def test_an_slo_never_changes_the_graph_hash(text: str) -> None:
    from plan2flow.compiler import compile_plan

    plain = compile_plan(plan_text("nightly", "  - {id: a, type: noop}\n"), "p.yaml")
    with_slo = compile_plan(plan_text("nightly", "  - {id: a, type: noop}\n", text), "p.yaml")
    assert with_slo.graph.hash == plain.graph.hash
    assert (with_slo.slo is None) == (text == "")


def test_report_from_an_unreachable_prometheus_is_status_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_rules(tmp_path)
    result = runner.invoke(
        app,
        [
            "slo",
            "report",
            str(tmp_path / "nightly.yaml"),
            "--prometheus",
            f"http://127.0.0.1:{port}",
        ],
    )
    assert result.exit_code == 2
    assert "plan2flow: cannot query Prometheus at http://127.0.0.1:" in result.output
