"""Run metrics fed by the event bus: counted from a real run's events, bounded labels, served
on /metrics over HTTP by the library and by ``plan2flow metrics serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import build_module, import_flow, plan_text

from plan2flow.escalation import events as escalation_events  # noqa: F401 (registers types)
from plan2flow.events import InProcessBus, RunContext, process_bus
from plan2flow.flows import (
    approval_events,  # noqa: F401 (registers approval.* types)
    runtime,
)
from plan2flow.observability.feed import follow
from plan2flow.observability.metrics import RunMetrics
from plan2flow.observability.serve import MetricsServer

DEADLINE = 60.0
TASKS = """\
  - id: extract
    type: shell
    params: {shell: true, argv: ['printf rows > "${{ outputs.raw }}"']}
    outputs: [raw]
  - id: flaky
    type: shell
    retries: 1
    retry_delay_seconds: 0.1
    params: {shell: true, argv: ['[ -e tried ] || { touch tried; exit 1; }']}
  - id: broken
    type: shell
    depends_on: [extract]
    params: {shell: true, argv: ['exit 3']}
  - {id: after, type: noop, depends_on: [broken]}
"""


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def value(metrics: RunMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_agent_health_checks_reach_the_metrics_with_their_latency() -> None:
    """`plan2flow agents health` publishes on the event bus too: what `metrics serve` follows."""
    from plan2flow.agents.registry import AgentStatus, health_events

    metrics = RunMetrics()
    subscription = follow(process_bus(), metrics)
    statuses = [
        AgentStatus("coder", ("generate_code",), ("default",), True, "ok", 0.25, 0.0),
        AgentStatus("tester", ("test",), ("default",), False, "down", 1.5, 0.0),
    ]
    try:
        for event in health_events(statuses):  # what publish_health puts on the bus
            assert process_bus().publish(event) == "published"
        assert subscription.wait_handled(2, timeout=30)
    finally:
        subscription.close()
    assert value(metrics, "plan2flow_agent_healthy", agent="coder") == 1
    assert value(metrics, "plan2flow_agent_healthy", agent="tester") == 0
    assert value(metrics, "plan2flow_agent_health_latency_seconds", agent="coder") == 0.25
    assert value(metrics, "plan2flow_agent_health_latency_seconds", agent="tester") == 1.5
    checks = "plan2flow_agent_health_checks_total"
    assert value(metrics, checks, agent="tester", healthy="false") == 1


def test_every_kind_of_event_is_counted_with_bounded_labels() -> None:
    metrics = RunMetrics()
    bus = InProcessBus()
    subscription = follow(bus, metrics)
    run = RunContext(tenant="acme", plan="etl", graphhash="sha256:1", flowrunid="run-1")
    published = [
        run.flow("started", tasks=2),
        run.task("started", "gen", tasktype="generate_code"),
        run.event(
            "plan2flow.escalation.variant_scored",
            taskid="gen",
            attempt=1,
            label="remote-1",
            tier="remote",
            model="small-model",
            score=0.9,
        ),
        run.event(
            "plan2flow.escalation.finished",
            taskid="gen",
            attempt=1,
            record_id="e1",
            outcome="succeeded",
            tier_reached="remote",
            reason="passed",
            cost_usd=0.25,
            prompt_tokens=100,
            completion_tokens=40,
        ),
        run.task("completed", "gen", duration_seconds=3.0),
        run.event(
            "plan2flow.approval.requested",
            taskid="ok",
            attempt=1,
            options=["yes", "no"],
            deadline="2030-01-01T00:00:00Z",
        ),
        run.event("plan2flow.agent.health", agent="tester", healthy=False, detail="down"),
        run.event(
            "plan2flow.artifact.stored",
            taskid="gen",
            attempt=1,
            name="a",
            path="/a",
            digest="sha256:2",
            size=2048,
        ),
    ]
    for event in published:
        bus.publish(event)
    assert subscription.wait_handled(len(published), DEADLINE)
    assert value(metrics, "plan2flow_runs_in_progress", plan="etl") == 1
    assert value(metrics, "plan2flow_approvals_waiting", plan="etl") == 1
    asked = value(metrics, "plan2flow_approval_oldest_requested_timestamp_seconds", plan="etl")
    assert asked is not None and abs(asked - time.time()) < 60
    assert (
        value(metrics, "plan2flow_escalation_variants_total", tier="remote", model="small-model")
        == 1
    )
    assert (
        value(
            metrics, "plan2flow_escalations_total", plan="etl", outcome="succeeded", tier="remote"
        )
        == 1
    )
    assert value(metrics, "plan2flow_escalation_tokens_total", plan="etl", kind="prompt") == 100
    assert value(metrics, "plan2flow_escalation_cost_usd_total", plan="etl") == 0.25
    assert value(metrics, "plan2flow_agent_healthy", agent="tester") == 0
    assert value(metrics, "plan2flow_artifact_bytes_total", plan="etl") == 2048
    assert (
        value(
            metrics,
            "plan2flow_task_runs_total",
            plan="etl",
            type="generate_code",
            state="completed",
        )
        == 1
    )
    assert (
        value(metrics, "plan2flow_task_duration_seconds_count", plan="etl", type="generate_code")
        == 1
    )
    later = [
        run.event(
            "plan2flow.approval.given", taskid="ok", attempt=1, option="yes", respondent="ada"
        ),
        run.flow("completed", tasks=2, duration_seconds=7.0),
    ]
    for event in later:
        bus.publish(event)
    assert subscription.wait_handled(len(published) + len(later), DEADLINE)
    assert value(metrics, "plan2flow_approvals_waiting", plan="etl") == 0
    assert value(metrics, "plan2flow_runs_in_progress", plan="etl") == 0
    assert value(metrics, "plan2flow_runs_total", plan="etl", state="completed") == 1
    assert value(metrics, "plan2flow_run_duration_seconds_sum", plan="etl", state="completed") == 7
    assert value(metrics, "plan2flow_event_bus_published_total", backend="memory") == 10
    subscription.close()


@pytest.mark.slow
def test_a_real_run_is_counted_by_plan_type_and_state(tmp_path: Path, run_home: Path) -> None:
    metrics = RunMetrics()
    subscription = follow(process_bus(), metrics)
    try:
        flow = import_flow(build_module(tmp_path / "build", plan_text("counted", TASKS)))
        os.chdir(tmp_path)
        with runtime.options(runtime.RunOptions(no_cache=True)):
            state = flow(return_state=True)
        summary = runtime.summary_of(state)
        assert summary is not None and not summary.ok
        wait_for(
            lambda: value(metrics, "plan2flow_runs_total", plan="counted", state="failed"),
            "the run's end",
        )
    finally:
        subscription.close()
    tasks = "plan2flow_task_runs_total"
    assert value(metrics, tasks, plan="counted", type="shell", state="completed") == 2
    assert value(metrics, tasks, plan="counted", type="shell", state="failed") == 1
    # A task that never started has no type in its events.
    assert value(metrics, tasks, plan="counted", type="unknown", state="not_run") == 1
    assert value(metrics, "plan2flow_task_retries_total", plan="counted", type="shell") == 1
    assert value(metrics, "plan2flow_artifact_bytes_total", plan="counted") == 4
    assert (
        value(metrics, "plan2flow_run_duration_seconds_count", plan="counted", state="failed") == 1
    )
    assert value(metrics, "plan2flow_runs_in_progress", plan="counted") == 0
    labels = {
        label
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
        for label in sample.labels.values()
    }
    assert summary.flow_run_id not in labels
    assert not labels & {"extract", "flaky", "broken", "after"}


@pytest.mark.slow
def test_the_library_serves_metrics_over_http() -> None:
    metrics = RunMetrics()
    metrics.runs.labels("etl", "failed").inc()
    server = MetricsServer(metrics.registry, "127.0.0.1", 0)
    try:
        response = httpx.get(server.url, timeout=10)
        assert response.status_code == 200
        assert 'plan2flow_runs_total{plan="etl",state="failed"} 1.0' in response.text
    finally:
        server.close()


@pytest.mark.slow
def test_serving_on_a_port_in_use_is_one_line_and_status_2() -> None:
    first = MetricsServer(RunMetrics().registry, "127.0.0.1", 0)
    try:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "plan2flow"),
                "metrics",
                "serve",
                "--port",
                str(first.port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        first.close()
    assert done.returncode == 2
    assert done.stderr.startswith("plan2flow: cannot serve metrics on 127.0.0.1:")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_metrics_serve_answers_then_ends_on_sigterm() -> None:
    with subprocess.Popen(
        [str(Path(sys.executable).parent / "plan2flow"), "metrics", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PLAN2FLOW_EVENTS_URL"},
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("serving http://127.0.0.1:"), first
            response = httpx.get(first.split()[1], timeout=10)
            assert response.status_code == 200
            assert "plan2flow_event_bus_published_total" in response.text
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.slow
def test_run_writes_its_metrics_to_a_textfile(tmp_path: Path, run_home: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    plan = tmp_path / "counted.yaml"
    plan.write_text(plan_text("counted", TASKS), encoding="utf-8")
    target = tmp_path / "textfile" / "plan2flow.prom"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "plan2flow"),
            "run",
            str(plan),
            "--metrics-file",
            str(target),
        ],
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(target.read_text())
        for sample in family.samples
    }
    assert samples[("plan2flow_runs_total", (("plan", "counted"), ("state", "failed")))] == 1
    assert samples[("plan2flow_task_retries_total", (("plan", "counted"), ("type", "shell")))] == 1
    assert not list(target.parent.glob("*.tmp*"))  # written atomically: no temporary file left


@pytest.mark.slow
def test_metrics_serve_counts_every_process_events_from_nats(tmp_path: Path) -> None:
    from events_nats import own_server

    from plan2flow.events.jetstream import JetStreamBus, NatsSettings

    with own_server(tmp_path / "nats") as nats:
        env = {**os.environ, "PLAN2FLOW_EVENTS_URL": nats.url}
        with subprocess.Popen(
            [str(Path(sys.executable).parent / "plan2flow"), "metrics", "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as process:
            try:
                assert process.stdout is not None
                first = process.stdout.readline()
                assert first.endswith("(events from NATS JetStream)\n"), first
                url = first.split()[1]
                bus = JetStreamBus(NatsSettings.from_env(env))
                run = RunContext(tenant="acme", plan="etl", graphhash="sha256:1", flowrunid="r9")
                for event in (
                    run.flow("started", tasks=1),
                    run.task("started", "load", tasktype="shell"),
                    run.task("failed", "load", message="exit status 1"),
                    run.flow("failed", message="1 task(s) failed: load", failed=["load"]),
                ):
                    bus.publish(event)
                assert bus.flush(30)
                bus.close()
                failed = 'plan2flow_runs_total{plan="etl",state="failed"} 1.0'
                wait_for(lambda: failed in httpx.get(url, timeout=10).text, "the consumed events")
                text = httpx.get(url, timeout=10).text
                assert (
                    'plan2flow_task_runs_total{plan="etl",state="failed",type="shell"} 1.0' in text
                )
                assert "plan2flow_event_dlq_messages 0.0" in text
                assert 'plan2flow_event_consumer_pending{consumer="plan2flow-metrics"} 0.0' in text
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=30) == 0
            finally:
                if process.poll() is None:
                    process.kill()
