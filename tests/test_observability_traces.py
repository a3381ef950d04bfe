"""OpenTelemetry spans of compile stages, flow runs and task runs: recorded by the SDK's
in-memory exporter in this process, and sent by OTLP/HTTP to a real receiver on 127.0.0.1 by a
``plan2flow run`` whose shell task starts ``plan2flow compile`` (its spans are the task's
children, through ``TRACEPARENT``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_receiver import ReceivedSpan, otlp_receiver
from support import build_module, import_flow, plan_text

from plan2flow.flows import runtime
from plan2flow.observability import tracing

PLAN2FLOW = str(Path(sys.executable).parent / "plan2flow")
TASKS = """\
  - id: first
    type: shell
    params: {shell: true, argv: ['printf %s "$TRACEPARENT" > "${{ outputs.parent }}"']}
    outputs: [parent]
  - {id: second, type: noop, depends_on: [first]}
"""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    recorded = InMemorySpanExporter()
    tracing.use_exporter(recorded)
    try:
        yield recorded
    finally:
        tracing.use_exporter(None)


def test_off_means_no_span_and_no_traceparent() -> None:
    tracing.use_exporter(None)
    with tracing.span("nothing") as span:
        assert span is None
        assert tracing.subprocess_env() == {}
    assert tracing.start_span("nothing") is None


def test_a_span_takes_its_parent_from_traceparent(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    monkeypatch.setenv("TRACEPARENT", parent)
    with tracing.span("child") as span:
        assert span is not None
        assert tracing.subprocess_env()["TRACEPARENT"].startswith(
            "00-0af7651916cd43dd8448eb211c80319c-"
        )
        recorder = tracing.stage_recorder(span)
        assert recorder is not None
        recorder("load", 0.01)
    load, child = exporter.get_finished_spans()
    assert child.name == "child" and load.name == "compile.load"
    assert format(child.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert child.parent is not None and format(child.parent.span_id, "016x") == "b7ad6b7169203331"
    assert load.parent is not None and load.parent.span_id == child.context.span_id


@pytest.mark.slow
def test_a_run_records_its_flow_and_task_spans(
    tmp_path: Path, run_home: Path, exporter: InMemorySpanExporter
) -> None:
    flow = import_flow(build_module(tmp_path / "build", plan_text("traced", TASKS)))
    with runtime.options(runtime.RunOptions(no_cache=True)):
        state = flow(return_state=True)
    summary = runtime.summary_of(state)
    assert summary is not None and summary.ok
    spans = {span.name: span for span in exporter.get_finished_spans()}
    run_span, first, second = spans["flow traced"], spans["task first"], spans["task second"]
    assert run_span.attributes is not None
    assert run_span.attributes["plan2flow.correlation_id"] == summary.flow_run_id
    for task in (first, second):
        assert task.parent is not None and task.parent.span_id == run_span.context.span_id
        assert task.context.trace_id == run_span.context.trace_id
        assert task.attributes is not None
        assert task.attributes["plan2flow.correlation_id"] == summary.flow_run_id
    (parent_file,) = (run_home / "artifacts" / "traced").glob("*/parent")
    _version, trace_id, span_id, _ = parent_file.read_text().split("-")
    assert trace_id == format(first.context.trace_id, "032x")
    assert span_id == format(first.context.span_id, "016x")


@pytest.mark.slow
def test_spans_reach_an_otlp_receiver_with_their_parents_across_a_subprocess(
    tmp_path: Path, run_home: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    (tmp_path / "inner.yaml").write_text(
        plan_text("inner", "  - {id: only, type: noop}\n"), encoding="utf-8"
    )
    outer = tmp_path / "outer.yaml"
    outer.write_text(
        plan_text(
            "outer",
            "  - id: nested\n    type: shell\n"
            f"    params: {{argv: ['{PLAN2FLOW}', compile, '{tmp_path / 'inner.yaml'}',"
            f" -o, '{tmp_path / 'out'}']}}\n",
        ),
        encoding="utf-8",
    )
    with otlp_receiver() as (endpoint, receiver):
        done = subprocess.run(
            [PLAN2FLOW, "run", str(outer)],
            env={
                **os.environ,
                "PREFECT_API_URL": str(PREFECT_API_URL.value()),
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

        def complete(spans: list[ReceivedSpan]) -> bool:
            names = {span.name for span in spans}
            inner = any(s.attributes.get("plan2flow.plan") == "inner" for s in spans)
            return inner and {"flow outer", "task nested", "compile.codegen"} <= names

        assert receiver.wait_for(complete, 30), receiver.spans
    # `plan2flow run` compiled the outer plan first, in a trace of its own.
    (outer_compile,) = [
        s
        for s in receiver.spans
        if s.name == "compile" and s.attributes.get("plan2flow.plan") == "outer"
    ]
    assert not outer_compile.parent_span_id
    (run_span,) = [s for s in receiver.spans if s.name == "flow outer"]
    spans = {s.name: s for s in receiver.spans if s.trace_id == run_span.trace_id}
    task, compile_span = spans["task nested"], spans["compile"]
    assert task.parent_span_id == run_span.span_id
    assert compile_span.parent_span_id == task.span_id  # in the grandchild process
    assert compile_span.attributes["plan2flow.plan"] == "inner"
    for stage in ("load", "validate", "decompose", "link", "graph", "codegen"):
        assert spans[f"compile.{stage}"].parent_span_id == compile_span.span_id
    assert {s.service for s in receiver.spans} == {"plan2flow"}
    assert run_span.attributes["plan2flow.correlation_id"] in done.stdout


@pytest.mark.slow
def test_tasks_in_a_process_pool_are_children_of_the_flow_runs_span(
    tmp_path: Path, run_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's workers are other processes: the flow's span reaches them through the run's
    ``traceparent``, and their spans leave before the pool ends them."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from prefect.task_runners import ProcessPoolTaskRunner

    flow = import_flow(build_module(tmp_path / "build", plan_text("pooled", TASKS)))
    with otlp_receiver() as (endpoint, receiver):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)  # the workers' exporter
        tracing.use_exporter(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
        try:
            with runtime.options(runtime.RunOptions(no_cache=True)):
                pooled = flow.with_options(task_runner=ProcessPoolTaskRunner(max_workers=2))
                state = pooled(return_state=True)
        finally:
            tracing.use_exporter(None)
        summary = runtime.summary_of(state)
        assert summary is not None and summary.ok, state

        def complete(spans: list[ReceivedSpan]) -> bool:
            return {"flow pooled", "task first", "task second"} <= {span.name for span in spans}

        assert receiver.wait_for(complete, 30), receiver.spans
    (run_span,) = [s for s in receiver.spans if s.name == "flow pooled"]
    for name in ("task first", "task second"):
        (task,) = [s for s in receiver.spans if s.name == name]
        assert (task.trace_id, task.parent_span_id) == (run_span.trace_id, run_span.span_id)
        assert task.attributes["plan2flow.correlation_id"] == summary.flow_run_id
    (parent_file,) = (run_home / "artifacts" / "pooled").glob("*/parent")
    assert parent_file.read_text().split("-")[1] == run_span.trace_id  # the shell's parent


def test_a_model_call_is_a_span_with_its_model_and_tokens(exporter: InMemorySpanExporter) -> None:
    from openai_server import Reply, fake_openai

    from plan2flow.compiler.spec.escalation import Redaction
    from plan2flow.escalation import ChatClient, Gateway
    from plan2flow.escalation.budget import Budget

    with fake_openai([Reply(content='{"bodies": {}}')]) as server:
        chat = ChatClient(server.url, "small", max_retries=0)
        message = Gateway(Redaction(), ["127.0.0.1"]).outbound(server.url, [("user", "add")])
        with tracing.span("task generate"):
            chat.complete(message, temperature=0.2, budget=Budget(0.0))
    call, task = exporter.get_finished_spans()
    assert call.name == "escalation.call" and call.attributes is not None
    assert call.parent is not None and call.parent.span_id == task.context.span_id
    assert call.attributes["gen_ai.request.model"] == "small"
    assert call.attributes["gen_ai.usage.input_tokens"] == 100
    assert call.attributes["gen_ai.usage.output_tokens"] == 50
