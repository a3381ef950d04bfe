"""OpenTelemetry traces: spans for compile stages, flow runs, task runs, agent and escalation
calls, sent by OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set.

Off, every helper returns at once: no provider, no span object, no context lookup. The tracer
provider is this module's own, not OpenTelemetry's global one, so that turning plan2flow's traces
on turns on nothing else. A span's context crosses into subprocesses as the W3C ``TRACEPARENT``
variable (:func:`subprocess_env`); a process started with one takes it as the parent of its
first spans (:func:`env_parent`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .settings import tracing_requested

if TYPE_CHECKING:  # the SDK costs ~70 ms to import: only when traces are on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACEPARENT_ENV = "TRACEPARENT"
SERVICE = "plan2flow"
CORRELATION = "plan2flow.correlation_id"
_PROPAGATOR = TraceContextTextMapPropagator()
_LOCK = threading.Lock()


class _State:
    checked = False
    provider: TracerProvider | None = None
    tracer: Tracer | None = None


def _provider(processor: Any) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(processor)
    return provider


def tracer() -> Tracer | None:
    """plan2flow's tracer, or None when traces are off (decided once per process)."""
    if _State.checked:
        return _State.tracer
    with _LOCK:
        if not _State.checked:
            if tracing_requested():
                # Imported only when on: the exporter pulls in protobuf and requests.
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
                from opentelemetry.sdk.trace.export import BatchSpanProcessor

                provider = _provider(BatchSpanProcessor(OTLPSpanExporter()))
                atexit.register(provider.shutdown)
                _use(provider)
            _State.checked = True
    return _State.tracer


def _use(provider: TracerProvider | None) -> None:
    _State.provider = provider
    _State.tracer = provider.get_tracer("plan2flow") if provider is not None else None
    _State.checked = True


def use_exporter(exporter: SpanExporter | None) -> None:
    """Send every span to `exporter` as it ends (tests: the SDK's in-memory exporter); None
    turns traces off."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    with _LOCK:
        if _State.provider is not None:
            _State.provider.shutdown()
        _use(_provider(SimpleSpanProcessor(exporter)) if exporter is not None else None)


def flush(timeout_seconds: float = 5.0) -> bool:
    """Send what is batched (before a process ends by other means than its exit handlers)."""
    provider = _State.provider
    return provider.force_flush(int(timeout_seconds * 1000)) if provider is not None else True


def parent_from(traceparent: str | None) -> otel_context.Context | None:
    """The context a W3C ``traceparent`` value names, or None."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def env_parent() -> otel_context.Context | None:
    """The parent this process was given by the one that started it (``TRACEPARENT``)."""
    return parent_from(os.environ.get(TRACEPARENT_ENV))


def traceparent_of(span: Span | None = None) -> str | None:
    """The W3C ``traceparent`` of `span` (the current span by default), or None."""
    if _State.tracer is None:
        return None
    context = trace.set_span_in_context(span) if span is not None else None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier.get("traceparent")


def subprocess_env() -> dict[str, str]:
    """``{"TRACEPARENT": …}`` for a child process of the current span; empty when off."""
    if _State.tracer is None:
        return {}
    value = traceparent_of()
    return {TRACEPARENT_ENV: value} if value else {}


def _ids(span: Span) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _default_parent() -> otel_context.Context | None:
    """The current span's context, or else the one this process was started in."""
    if trace.get_current_span().get_span_context().is_valid:
        return None
    return env_parent()


def start_span(
    name: str,
    *,
    parent: otel_context.Context | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Span | None:
    """A span that outlives this call (a flow run's): end it with :func:`end_span`."""
    active = tracer()
    if active is None:
        return None
    return active.start_span(
        name, context=parent or _default_parent(), attributes=_clean(attributes)
    )


def end_span(span: Span | None, *, error: str | None = None) -> None:
    if span is None:
        return
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def context_of(span: Span | None) -> otel_context.Context | None:
    return trace.set_span_in_context(span) if span is not None else None


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: otel_context.Context | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span | None]:
    """A span current within the block (log records in it carry its ids); an exception out of
    the block is recorded on it and marks it failed. Yields None when traces are off."""
    active = tracer()
    if active is None:
        yield None
        return
    with (
        active.start_as_current_span(
            name, context=parent or _default_parent(), attributes=_clean(attributes)
        ) as current,
        _logs().traced(*_ids(current)),
    ):
        yield current


def _logs() -> Any:
    from . import logs

    return logs


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (attributes or {}).items() if v is not None}


def stage_recorder(
    parent: Span | None, prefix: str = "compile."
) -> Callable[[str, float], None] | None:
    """An observer of ``compile_plan``'s stages that records each as a child span of
    `parent`, from the seconds it took (None when traces are off)."""
    active = _State.tracer
    if parent is None or active is None:
        return None
    context = trace.set_span_in_context(parent)
    clock = [time.time_ns()]

    def record(stage: str, seconds: float) -> None:
        end = time.time_ns()
        begin = max(end - int(seconds * 1e9), clock[0])
        active.start_span(prefix + stage, context=context, start_time=begin).end(end_time=end)
        clock[0] = end

    return record
