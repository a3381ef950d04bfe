"""Costs and budgets while plans run on a real Prefect API: each task attempt's compute is charged
to the ledger and counted by the metrics; a spent budget refuses a run before it starts (P2F801)
and stops the tasks of a running run (P2F802, never retried); a task that escalates may spend on
models only what is left; agent calls are timed by agent."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path

import pytest
from support import build_module, import_flow, plan_text
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.events import process_bus
from plan2flow.flows import budgeting, observing, runtime
from plan2flow.flows.graph import GraphTask
from plan2flow.flows.workspace import RunPlace
from plan2flow.memory import budgets
from plan2flow.memory.costs import charge_compute, run_costs
from plan2flow.memory.db.engine import configured_database
from plan2flow.memory.db.models import CostEntry
from plan2flow.memory.errors import BudgetSpent
from plan2flow.observability.feed import follow, settle
from plan2flow.observability.metrics import RunMetrics

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
PRICE = "36"
"""US dollars per hour: a cent a second."""


def _sleep(seconds: float) -> str:
    return f'{{argv: ["{sys.executable}", "-c", "import time; time.sleep({seconds})"]}}'


def _run(tmp_path: Path, name: str, tasks: str, extra: str = "") -> tuple[object, RunMetrics]:
    metrics = RunMetrics()
    subscription = follow(process_bus(), metrics)
    try:
        flow = import_flow(build_module(tmp_path / name, plan_text(name, tasks, extra)))
        with runtime.options(runtime.RunOptions(no_cache=True)):
            state = flow(return_state=True)
        assert settle(metrics, 30)
    finally:
        subscription.close()
    return state, metrics


def _ledger(plan: str) -> list[CostEntry]:
    from sqlmodel import col, select

    with configured_database() as database, database.session("default") as session:
        statement = select(CostEntry).where(col(CostEntry.plan) == plan)
        return list(session.exec(statement.order_by(col(CostEntry.created))).all())


@pytest.mark.slow
def test_a_run_charges_the_compute_of_its_tasks(
    run_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN2FLOW_COMPUTE_PRICE_PER_HOUR", PRICE)
    tasks = f"""\
  - {{id: work, type: shell, params: {_sleep(0.3)}}}
  - {{id: join, type: noop, depends_on: [work]}}
"""
    state, metrics = _run(tmp_path, "costly", tasks, "budget: {usd: 100, period: day}\n")
    assert state.is_completed()  # type: ignore[attr-defined]
    (charge,) = _ledger("costly")  # the join point is not compute
    assert (charge.task_id, charge.attempt, charge.kind) == ("work", 1, "compute")
    # The ledger keeps seconds to the microsecond, and prices the seconds measured.
    assert charge.seconds >= 0.3 and charge.usd == pytest.approx(charge.seconds / 100, abs=1e-8)
    with configured_database() as database:
        (cost,) = run_costs(database, "default", EPOCH)
        found = budgets.statuses(database, "default")
    assert (cost.plan, cost.state, cost.usd) == ("costly", "completed", charge.usd)
    assert [(s.scope, s.name, s.usd, s.period, s.spent) for s in found] == [
        ("plan", "costly", 100.0, "day", charge.usd)
    ]
    exposition = metrics.exposition().decode()
    seconds = f'plan2flow_compute_seconds_total{{plan="costly",type="shell"}} {charge.seconds}'
    assert seconds in exposition
    assert 'plan2flow_cost_usd_total{kind="compute",plan="costly"}' in exposition


@pytest.mark.slow
def test_a_budget_spent_mid_run_stops_the_next_tasks(
    run_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN2FLOW_COMPUTE_PRICE_PER_HOUR", PRICE)
    tasks = f"""\
  - {{id: first, type: shell, params: {_sleep(0.3)}}}
  - {{id: second, type: shell, depends_on: [first], retries: 2, params: {{argv: [echo, hi]}}}}
  - {{id: third, type: noop, depends_on: [second]}}
"""
    state, metrics = _run(tmp_path, "capped", tasks, "budget: {usd: 0.001, period: total}\n")
    assert state.is_failed()  # type: ignore[attr-defined]
    summary = runtime.summary_of(state)  # type: ignore[arg-type]
    assert summary is not None
    assert [(t.id, t.state) for t in summary.tasks] == [
        ("first", "Completed"),
        ("second", budgeting.BUDGET_STOPPED),
        ("third", "UpstreamFailed"),
    ]
    second = summary.tasks[1]
    assert second.attempts == 0  # never started (and never retried: one stop is counted)
    assert str(second.message).startswith(
        "P2F802 task 'second' refused: plan 'capped' has spent 0.00"
    )
    assert [entry.task_id for entry in _ledger("capped")] == ["first"]
    exposition = metrics.exposition().decode()
    assert 'plan2flow_budget_stops_total{plan="capped",scope="plan"} 1.0' in exposition


@pytest.mark.slow
def test_a_spent_budget_refuses_the_run_before_it_starts(
    run_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with configured_database() as database:
        charge_compute(
            database,
            "default",
            plan="spent",
            run_id="earlier",
            task_id="t",
            attempt=1,
            seconds=60,
            usd=2.0,
        )
    plan = tmp_path / "spent.yaml"
    plan.write_text(
        plan_text(
            "spent", "  - {id: never, type: shell, params: {argv: [echo]}}\n", "budget: {usd: 2}\n"
        )
    )
    refused = CliRunner().invoke(app, ["run", str(plan)])
    assert isinstance(refused.exception, BudgetSpent)
    assert str(refused.exception).startswith(
        "P2F801 a run of plan 'spent' refused: plan 'spent' has spent 2.0000 of its 2 USD "
        "budget this month; hint: raise `budget.usd` in plan 'spent'"
    )
    monkeypatch.setenv("PLAN2FLOW_COMPUTE_PRICE_PER_HOUR", "free")
    unpriced = CliRunner().invoke(app, ["run", str(plan)])
    assert str(unpriced.exception).startswith("P2F803 PLAN2FLOW_COMPUTE_PRICE_PER_HOUR='free'")
    monkeypatch.delenv("PLAN2FLOW_COMPUTE_PRICE_PER_HOUR")
    # A run started elsewhere (a deployment, a schedule) is refused by the runtime itself.
    state, _ = _run(
        tmp_path,
        "spent",
        "  - {id: never, type: shell, params: {argv: [echo]}}\n",
        "budget: {usd: 2}\n",
    )
    assert state.is_failed()  # type: ignore[attr-defined]
    assert "P2F801 a run of plan 'spent' refused" in str(state.message)  # type: ignore[attr-defined]
    assert [entry.run_id for entry in _ledger("spent")] == ["earlier"]
    with configured_database() as database:
        assert [c.run_id for c in run_costs(database, "default", EPOCH)] == ["earlier"]


def test_an_escalation_may_spend_only_what_is_left(run_home: Path) -> None:
    with configured_database() as database:
        budgets.set_budget(database, "default", scope="tenant", name="", usd=1.0, period="day")
        charge_compute(
            database, "default", plan="gen", run_id="r", task_id="t", attempt=1, seconds=1, usd=0.4
        )
    task = GraphTask(
        id="code",
        type="generate_code",
        hash="sha256:0",
        depends_on=(),
        inputs={},
        outputs=("code",),
        params={},
        agent=None,
        retries=0,
        retry_delay_seconds=0,
        timeout_seconds=None,
        tags=(),
        escalation={"budget_usd": 5.0, "threshold": 0.8},
    )
    place = RunPlace("gen", "sha256:1", "r", "", "", budgeted=True)
    capped, stopped = budgeting.before_task(place, task)
    assert stopped is None
    assert capped.escalation == {"budget_usd": pytest.approx(0.6), "threshold": 0.8}
    unbudgeted, _ = budgeting.before_task(RunPlace("gen", "sha256:1", "r", "", ""), task)
    assert unbudgeted is task  # no budget: nothing read, nothing changed


def test_agent_calls_are_timed_by_agent(run_home: Path) -> None:
    metrics = RunMetrics()
    subscription = follow(process_bus(), metrics)
    place = RunPlace("agents", "sha256:1", "r", "", "")
    try:
        observing.agent_called("plan2flow-tester", 1.0, "succeeded")  # outside a task: nothing
        with observing.task_scope(place, "test", "test", 1):
            observing.agent_called("plan2flow-tester", 0.2, "succeeded")
            observing.agent_called("plan2flow-tester", 3.0, "failed")
        assert settle(metrics, 10)
    finally:
        subscription.close()
    exposition = metrics.exposition().decode()
    name, agent = "plan2flow_agent_call_duration_seconds", 'agent="plan2flow-tester"'
    for sample in (
        f'{name}_count{{{agent},outcome="succeeded"}} 1.0',
        f'{name}_bucket{{{agent},le="0.25",outcome="succeeded"}} 1.0',
        f'{name}_sum{{{agent},outcome="failed"}} 3.0',
    ):
        assert sample in exposition


def test_free_unlimited_compute_is_counted_but_not_written(run_home: Path) -> None:
    metrics = RunMetrics()
    subscription = follow(process_bus(), metrics)
    task = GraphTask("t", "python", "sha256:0", (), {}, (), {}, None, 0, 0, None, ())
    try:
        budgeting.charge(RunPlace("free", "sha256:1", "r", "", ""), task, 1, 0.0)
        budgeting.charge(
            RunPlace("priced", "sha256:1", "r", "", "", compute_price=36.0), task, 1, 0.0
        )
        budgeting.charge(
            RunPlace("free", "sha256:1", "r", "", ""),
            dataclasses.replace(task, type="noop"),
            1,
            0.0,
        )
        assert settle(metrics, 10)
    finally:
        subscription.close()
    assert _ledger("free") == []
    (priced,) = _ledger("priced")
    assert priced.usd == pytest.approx(priced.seconds / 100)
    exposition = metrics.exposition().decode()
    assert 'plan2flow_compute_seconds_total{plan="free",type="python"}' in exposition
    assert 'type="noop"' not in exposition
