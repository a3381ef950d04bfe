"""Plan runs publish their transitions on the event bus: every task's, in order, in-process and
on NATS JetStream; from tasks in a process pool; with the bus stopped during the run (spooled,
then delivered once); and ``flow.cancelled`` when ``plan2flow run`` is interrupted. Real runs,
real NATS (private streams and subject roots, deleted afterwards)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from events_nats import (
    Server,
    delete_streams,
    need_binary,
    need_shared_nats,
    private_settings,
    wait_until,
)
from support import build_module, import_flow, load_bench, plan_text

from plan2flow.events import Event, process_bus
from plan2flow.events import bus as bus_module
from plan2flow.events.admin import flush as admin_flush
from plan2flow.events.admin import replay
from plan2flow.events.jetstream import NatsSettings
from plan2flow.flows import runtime

pytestmark = pytest.mark.usefixtures("run_home")

DEADLINE = 120.0

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
    params: {shell: true, argv: ['echo oops >&2; exit 3']}
  - {id: after, type: noop, depends_on: [broken]}
  - {id: done, type: noop, depends_on: [flaky]}
"""

FIRST_RUN = {  # every attempt that ran is charged its compute (not a join point's)
    "extract": [("started", 1), ("charged", 1), ("artifact.stored", 1), ("completed", 1)],
    "flaky": [("started", 1), ("charged", 1), ("retrying", 2), ("charged", 2), ("completed", 2)],
    "broken": [("started", 1), ("charged", 1), ("failed", 1)],
    "after": [("not_run", 1)],
    "done": [("started", 1), ("completed", 1)],
}
CACHED_RUN = {
    "extract": [("cached", 1)],
    "flaky": [("cached", 1)],
    "broken": [("started", 1), ("charged", 1), ("failed", 1)],
    "after": [("not_run", 1)],
    "done": [("cached", 1)],
}


def kind(event: Event) -> str:
    return event.type.removeprefix("plan2flow.")


def by_task(events: list[Event]) -> dict[str, list[tuple[str, int]]]:
    found: dict[str, list[tuple[str, int]]] = {}
    for event in events:
        if event.taskid is not None:
            found.setdefault(event.taskid, []).append((kind(event).split(".", 1)[1], event.attempt))
    for name, items in found.items():  # artifact.stored keeps its kind's prefix
        found[name] = [("artifact.stored" if k == "stored" else k, a) for k, a in items]
    return found


def check_run(events: list[Event], summary: runtime.RunSummary, expected: dict[str, Any]) -> None:
    """One run's events: flow.started first, flow.failed last, every task's transitions in
    order, an upstream's end before its downstream's first event, the run's attributes on each."""
    assert kind(events[0]) == "flow.started" and kind(events[-1]) == "flow.failed"
    assert events[0].data.tasks == 5  # type: ignore[attr-defined]
    assert events[-1].data.failed == ["broken"]  # type: ignore[attr-defined]
    assert events[-1].data.not_run == ["after"]  # type: ignore[attr-defined]
    assert by_task(events) == expected
    for event in events:
        assert (event.tenant, event.plan, event.graphhash, event.flowrunid) == (
            "default",
            "transitions",
            summary.graph_hash,
            summary.flow_run_id,
        )
    last = {e.taskid: i for i, e in enumerate(events)}
    first = {e.taskid: i for i, e in reversed(list(enumerate(events)))}
    for upstream, downstream in (("extract", "broken"), ("broken", "after"), ("flaky", "done")):
        assert last[upstream] < first[downstream], (upstream, downstream)
    assert len({event.id for event in events}) == len(events)
    stored = [e for e in events if kind(e) == "artifact.stored"]
    for event in stored:
        assert event.data.name == "raw" and event.data.size == 4  # type: ignore[attr-defined]
        assert Path(event.data.path).read_bytes() == b"rows"  # type: ignore[attr-defined]
    failed = next(e for e in events if kind(e) == "task.failed")
    assert "exit status 3" in failed.data.message and failed.data.state == "Failed"  # type: ignore[attr-defined]
    not_run = next(e for e in events if kind(e) == "task.not_run")
    assert not_run.data.upstream == ["broken"]  # type: ignore[attr-defined]
    for retrying in (e for e in events if kind(e) == "task.retrying"):
        # The failure of the attempt before, and the time since (retry_delay_seconds: 0.1).
        assert retrying.data.message.startswith("exit status 1: "), retrying.data  # type: ignore[attr-defined]
        assert retrying.data.delay_seconds >= 0.05  # type: ignore[attr-defined]


def run_plan(flow: Any, no_cache: bool, runner: Any = None) -> runtime.RunSummary:
    if runner is not None:
        flow = flow.with_options(task_runner=runner)
    with runtime.options(runtime.RunOptions(no_cache=no_cache)):
        state = flow(return_state=True)
    summary = runtime.summary_of(state)
    assert summary is not None, state
    return summary


def use_nats(monkeypatch: pytest.MonkeyPatch, settings: NatsSettings) -> None:
    """Publish this process's (and its children's) events to `settings`' private streams."""
    monkeypatch.setenv("PLAN2FLOW_EVENTS_URL", ",".join(settings.servers))
    monkeypatch.setenv("PLAN2FLOW_EVENTS_ROOT", settings.root)
    monkeypatch.setenv("PLAN2FLOW_EVENTS_STREAM", settings.stream)
    monkeypatch.setenv("PLAN2FLOW_EVENTS_DLQ_STREAM", settings.dlq_stream)
    monkeypatch.setenv("PLAN2FLOW_EVENTS_ADVISORY_STREAM", settings.advisory_stream)


def forget_bus(settings: NatsSettings) -> None:
    """Close the process's bus for these servers: the next test's streams are other ones."""
    bus = bus_module._NATS_BUSES.pop(",".join(settings.servers), None)
    if bus is not None:
        bus.close()


@pytest.fixture
def nats(tmp_path: Path, run_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NatsSettings]:
    settings = private_settings(need_shared_nats(), run_home / "events")
    use_nats(monkeypatch, settings)
    yield settings
    forget_bus(settings)
    delete_streams(settings)


def stored_events(settings: NatsSettings, flow_run_id: str | None = None) -> list[Event]:
    events = [record.event for record in replay(">", from_seq=1, settings=settings)]
    assert all(event is not None for event in events)
    return [e for e in events if e is not None and flow_run_id in {None, e.flowrunid}]


@pytest.mark.slow
def test_a_run_publishes_every_transition_in_order_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLAN2FLOW_EVENTS_URL", raising=False)
    monkeypatch.delenv("PLAN2FLOW_EVENTS", raising=False)
    flow = import_flow(build_module(tmp_path / "build", plan_text("transitions", TASKS)))
    subscription = process_bus().subscribe("plan2flow.*.transitions.>")
    try:
        for no_cache, expected in ((True, FIRST_RUN), (False, CACHED_RUN)):
            summary = run_plan(flow, no_cache)
            check_run(follow_run(subscription), summary, expected)
    finally:
        subscription.close()


def follow_run(subscription: Any) -> list[Event]:
    """The events of one run from `subscription`, up to its flow.failed."""
    events: list[Event] = []
    while not events or kind(events[-1]) != "flow.failed":
        event = subscription.get(timeout=DEADLINE)
        assert event is not None, f"no flow.failed after {[kind(e) for e in events]}"
        events.append(event)
    return events


@pytest.mark.slow
def test_events_of_tasks_in_a_process_pool_reach_the_in_process_bus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.task_runners import ProcessPoolTaskRunner

    monkeypatch.delenv("PLAN2FLOW_EVENTS_URL", raising=False)
    monkeypatch.delenv("PLAN2FLOW_EVENTS", raising=False)
    flow = import_flow(build_module(tmp_path / "build", plan_text("transitions", TASKS)))
    subscription = process_bus().subscribe("plan2flow.*.transitions.>")
    try:
        summary = run_plan(flow, True, ProcessPoolTaskRunner(max_workers=2))
        check_run(follow_run(subscription), summary, FIRST_RUN)
    finally:
        subscription.close()


@pytest.mark.slow
def test_a_run_publishes_every_transition_in_order_on_jetstream(
    tmp_path: Path, nats: NatsSettings
) -> None:
    flow = import_flow(build_module(tmp_path / "build", plan_text("transitions", TASKS)))
    for no_cache, expected in ((True, FIRST_RUN), (False, CACHED_RUN)):
        summary = run_plan(flow, no_cache)
        # finish() flushed the bus: every event of the run is stored when the flow returns.
        check_run(stored_events(nats, summary.flow_run_id), summary, expected)


@pytest.mark.slow
def test_events_of_tasks_in_a_process_pool_arrive(tmp_path: Path, nats: NatsSettings) -> None:
    from prefect.task_runners import ProcessPoolTaskRunner

    flow = import_flow(build_module(tmp_path / "build", plan_text("transitions", TASKS)))
    summary = run_plan(flow, True, ProcessPoolTaskRunner(max_workers=2))
    check_run(stored_events(nats, summary.flow_run_id), summary, FIRST_RUN)


WAITING = """\
  - {{id: first, type: shell, params: {{argv: ['true']}}}}
  - id: wait
    type: shell
    depends_on: [first]
    timeout_seconds: 120
    params:
      shell: true
      argv: ['touch {started}; while [ ! -e {go} ]; do sleep 0.05; done']
  - {{id: last, type: noop, depends_on: [wait]}}
"""


@pytest.mark.slow
def test_the_bus_stopped_during_a_run_delivers_every_event_once_after_restart(
    tmp_path: Path, run_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_binary()
    server = Server(tmp_path / "nats" / "store").start()
    settings = private_settings(server.url, run_home / "events")
    use_nats(monkeypatch, settings)
    started, go = tmp_path / "started", tmp_path / "go"
    text = plan_text("stopped", WAITING.format(started=started, go=go))
    flow = import_flow(build_module(tmp_path / "build", text))
    outcome: list[runtime.RunSummary] = []
    runner = threading.Thread(target=lambda: outcome.append(run_plan(flow, True)))
    try:
        runner.start()
        wait_until(started.exists, DEADLINE, "the waiting task to start")
        server.stop()
        go.touch()
        runner.join(DEADLINE)
        assert not runner.is_alive() and outcome, "the run did not complete"
        (summary,) = outcome
        assert summary.ok
        spool = run_home / "events" / "spool.jsonl"
        assert spool.exists() and spool.stat().st_size > 0
        server.start()  # the same port and store
        admin_flush(settings)
        expected = [
            "flow.started",
            "task.started first",
            "cost.charged first",
            "task.completed first",
            "task.started wait",
            "cost.charged wait",
            "task.completed wait",
            "task.started last",
            "task.completed last",
            "flow.completed",
        ]

        def delivered() -> list[str]:
            events = stored_events(settings, summary.flow_run_id)
            return [" ".join(filter(None, (kind(e), e.taskid))) for e in events]

        # The bus of this process may publish its spool itself once it is back: each once.
        wait_until(lambda: len(delivered()) >= len(expected), 30, "every event to be stored")
        assert delivered() == expected
    finally:
        go.touch()
        runner.join(DEADLINE)
        forget_bus(settings)
        server.kill()


BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_an_interrupted_run_publishes_flow_cancelled(
    tmp_path: Path, nats: NatsSettings, run_home: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    plan = tmp_path / "slow.yaml"
    plan.write_text(
        plan_text(
            "slow",
            "  - id: nap\n    type: shell\n    params: {shell: true, "
            "argv: ['touch \"$P2F_WORKDIR/up\"; exec sleep 300']}\n",
        )
    )
    # On the session's API: Ctrl-C with the temporary server of `plan2flow run` (which stops
    # with the run) is tests/test_interrupts.py's; this one is about the bus.
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    run = subprocess.Popen(
        [str(BIN / "plan2flow"), "run", str(plan)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        up: Callable[[], bool] = lambda: any((run_home / "runs" / "slow").glob("*/nap/up"))  # noqa: E731
        deadline = time.monotonic() + 240
        while not up():
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the task did not start"
            time.sleep(0.1)
        os.killpg(run.pid, signal.SIGINT)
        _, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 130, stderr
    events = stored_events(nats)
    kinds = [kind(e) for e in events]
    assert kinds[0] == "flow.started" and kinds[-1] == "flow.cancelled", kinds
    assert "task.started" in kinds
    assert events[-1].flowrunid in stderr
    assert "SIGINT" in events[-1].data.message  # type: ignore[attr-defined]
    assert run_state(run_home, events[-1].flowrunid) == "cancelled"


NAP = """\
  - id: nap
    type: shell
    params: {shell: true, argv: ['touch "$P2F_WORKDIR/up"; exec sleep 300']}
"""


def child_environment(run_home: Path) -> dict[str, str]:
    """This process's environment (the test's NATS streams, its home) and its Prefect API."""
    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(run_home / "results"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }


def wait_for_the_nap(run_home: Path, plan: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 240
    while not any((run_home / "runs" / plan).glob("*/nap/up")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.1)


def run_state(home: Path, flow_run_id: str) -> str | None:
    """The state of the run's row in project memory (the default SQLite database of `home`)."""
    with contextlib.closing(sqlite3.connect(home / "plan2flow.db")) as database:
        row = database.execute(
            "SELECT state FROM runs WHERE id = ?", (uuid.UUID(flow_run_id).hex,)
        ).fetchone()
    return None if row is None else str(row[0])


def end_of_run(settings: NatsSettings, plan: str, end: str) -> list[Event]:
    """The stored events of `plan`'s only run, once its `end` event is stored."""
    found: list[Event] = []

    def ended() -> bool:
        found[:] = [e for e in stored_events(settings) if e.plan == plan]
        return any(kind(e) == end for e in found)

    wait_until(ended, DEADLINE, f"{end} of {plan}")
    return found


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM to the process group, SIGKILL when it is still there after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=20)


@pytest.mark.slow
def test_a_crashed_run_ends_with_flow_failed(
    tmp_path: Path, nats: NatsSettings, run_home: Path
) -> None:
    """SIGTERM to a flow run's processes (not a cancellation): Prefect marks the run Crashed,
    and its on_crashed hook publishes flow.failed."""
    module = build_module(tmp_path / "build", plan_text("crashing", NAP))
    run = subprocess.Popen(
        [sys.executable, str(module)],
        env=child_environment(run_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for_the_nap(run_home, "crashing", run)
        os.killpg(run.pid, signal.SIGTERM)  # the flow's process and its task's command
        events = end_of_run(nats, "crashing", "flow.failed")
    finally:
        stop(run)
    kinds = [kind(e) for e in events]
    assert kinds[0] == "flow.started" and kinds[-1] == "flow.failed", kinds
    assert "task.started" in kinds and kinds.count("flow.failed") == 1
    assert events[-1].data.message.startswith("Crashed: "), events[-1].data  # type: ignore[attr-defined]
    flow_run_id = events[-1].flowrunid
    assert flow_run_id is not None
    wait_until(  # the hook closes the row after it published the event
        lambda: run_state(run_home, flow_run_id) == "crashed", DEADLINE, "the row to be closed"
    )


SERVE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("cancelled_flow", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["cancelled_flow"] = module
spec.loader.exec_module(module)
getattr(module, sys.argv[2]).serve(name="cancel-me")
"""


@pytest.mark.slow
def test_a_run_cancelled_in_prefect_ends_with_flow_cancelled(
    tmp_path: Path, nats: NatsSettings, run_home: Path
) -> None:
    """A deployment run cancelled as the UI cancels it (its state set to Cancelling): the runner
    stops it and runs its on_cancellation hook, which publishes flow.cancelled."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.objects import TaskRun
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    module = build_module(tmp_path / "build", plan_text("cancelling", NAP))
    flow = import_flow(module)
    serve = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(module), flow.fn.__name__],
        cwd=module.parent,
        env=child_environment(run_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        with get_client(sync_client=True) as client:

            def deployed() -> bool:
                assert serve.poll() is None, serve.communicate()
                try:
                    client.read_deployment_by_name(f"{flow.name}/cancel-me")
                except Exception:
                    return False
                return True

            wait_until(deployed, DEADLINE, "the deployment")
            flow_run = run_deployment(f"{flow.name}/cancel-me", timeout=0)
            wait_for_the_nap(run_home, "cancelling", serve)
            client.set_flow_run_state(flow_run.id, Cancelling(message="cancelled from the UI"))
            wait_until(
                lambda: client.read_flow_run(flow_run.id).state_type.value == "CANCELLED",
                DEADLINE,
                "the flow run to be Cancelled",
            )

            # The flow process stopped the task's command and so ended by itself, closing the
            # task run; a process held by its command until the runner's SIGKILL (30 s later)
            # leaves it Running.
            def nap() -> TaskRun:
                [task_run] = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
                )
                assert task_run.name == "nap"
                return task_run

            wait_until(lambda: nap().state_type.value == "FAILED", DEADLINE, "nap to fail")
            assert "the run is stopping" in str(nap().state.message)
        events = end_of_run(nats, "cancelling", "flow.cancelled")
    finally:
        stop(serve)
    kinds = [kind(e) for e in events]
    assert kinds[0] == "flow.started" and kinds[-1] == "flow.cancelled", kinds
    assert "task.started" in kinds and kinds.count("flow.cancelled") == 1
    assert events[-1].flowrunid == str(flow_run.id)
    assert events[-1].data.message  # type: ignore[attr-defined]
    wait_until(
        lambda: run_state(run_home, str(flow_run.id)) == "cancelled",
        DEADLINE,
        "the run's row to be closed",
    )


@pytest.mark.slow
def test_the_run_events_benchmark_measures_every_variant(
    tmp_path: Path, run_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = need_shared_nats()
    bench = load_bench("run_events")
    for variable in ("PLAN2FLOW_EVENTS", "PLAN2FLOW_EVENTS_URL"):
        monkeypatch.delenv(variable, raising=False)
    report = bench.measure(5, 1, directory=tmp_path / "build", max_workers=2, url=url)
    assert report["nats_stored"] == 2 * (2 * 5 + 2)
    for kind in ("wall", "body"):
        assert set(report[kind]["median_seconds"]) == {"off", "memory", "nats"}
        assert set(report[kind]["overhead_percent"]) == {"memory", "nats"}
    assert "PLAN2FLOW_EVENTS_URL" not in os.environ
    with pytest.raises(SystemExit):
        bench.main(["0"])
