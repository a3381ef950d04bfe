"""Log lines in Elastic Common Schema: one JSON object per record, with the ids of the run.

``PLAN2FLOW_LOG_FORMAT=ecs`` switches it on. :func:`install` puts one ECS handler in place of
the stream handlers of the loggers it is given (the root's, and those of Prefect's that do not
propagate), adds the run's ids to every record and masks secrets in every line. The ids come
from context variables that the runtime sets (:func:`bind`); callers may add a filter of their
own that finds them elsewhere (the runtime's reads Prefect's run context).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import ecs_logging

from .secrets import KnownSecrets, process_secrets

SERVICE = "plan2flow"


@dataclasses.dataclass(frozen=True)
class LogIds:
    """What ties a log line to a run: the correlation id is the flow run's id."""

    correlation_id: str | None = None
    tenant: str | None = None
    plan: str | None = None
    graph_hash: str | None = None
    task_id: str | None = None
    attempt: int | None = None

    def fields(self) -> dict[str, Any]:
        """The ECS custom fields, under ``plan2flow.`` (ECS keeps unknown roots for users)."""
        return {f"plan2flow.{k}": v for k, v in dataclasses.asdict(self).items() if v is not None}


_NO_IDS = LogIds()
_IDS: contextvars.ContextVar[LogIds | None] = contextvars.ContextVar(
    "plan2flow_log_ids", default=None
)
_TRACE_IDS: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "plan2flow_trace_ids", default=None
)


def current_ids() -> LogIds:
    return _IDS.get() or _NO_IDS


@contextlib.contextmanager
def bound(**ids: Any) -> Iterator[LogIds]:
    """Within the block, log records carry these ids on top of the ones bound outside it."""
    token = _IDS.set(dataclasses.replace(current_ids(), **ids))
    try:
        yield current_ids()
    finally:
        _IDS.reset(token)


def bind(**ids: Any) -> contextvars.Token[LogIds | None]:
    """Bind ids for the rest of this context (a flow's body: its tasks' threads copy it); the
    token given to :func:`unbind` restores what was bound before."""
    return _IDS.set(dataclasses.replace(current_ids(), **ids))


def unbind(token: contextvars.Token[LogIds | None]) -> None:
    """Restore the ids bound before :func:`bind` (in the context that bound them)."""
    try:
        _IDS.reset(token)
    except ValueError:  # another context: the one that bound them ends with its ids
        return


@contextlib.contextmanager
def traced(trace_id: str, span_id: str) -> Iterator[None]:
    """Within the block, records carry ECS ``trace.id`` and ``span.id`` (hex, W3C form)."""
    token = _TRACE_IDS.set((trace_id, span_id))
    try:
        yield
    finally:
        _TRACE_IDS.reset(token)


class RunIdsFilter(logging.Filter):
    """Adds the bound ids to each record that does not have them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_ids().fields().items():
            if name not in record.__dict__:
                record.__dict__[name] = value
        trace = _TRACE_IDS.get()
        if trace is not None and "trace.id" not in record.__dict__:
            record.__dict__["trace.id"], record.__dict__["span.id"] = trace
        return True


class RedactingFilter(logging.Filter):
    """Masks secrets in the message itself, before any handler (Prefect's API one too) sees it."""

    def __init__(self, secrets: KnownSecrets) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.secrets.mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True


class EcsFormatter(ecs_logging.StdlibFormatter):
    """ECS JSON with the service named, every value JSON-safe, and the whole line masked (a
    secret in an exception's text or in an extra field is masked too)."""

    def __init__(self, secrets: KnownSecrets) -> None:
        super().__init__(extra={"service.name": SERVICE}, exclude_fields=("process.thread.id",))
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return self.secrets.mask(super().format(record))


_INSTALLED = "_plan2flow_ecs"


def ecs_handler(
    stream: TextIO | None = None,
    secrets: KnownSecrets | None = None,
    filters: Iterable[logging.Filter] = (),
) -> logging.Handler:
    """A stream handler writing ECS lines (stderr by default), with the ids and the masking."""
    known = secrets or process_secrets()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(EcsFormatter(known))
    handler.addFilter(RedactingFilter(known))
    for extra in filters:
        handler.addFilter(extra)
    handler.addFilter(RunIdsFilter())
    setattr(handler, _INSTALLED, True)
    return handler


def install(
    logger_names: Iterable[str] = ("",),
    *,
    stream: TextIO | None = None,
    filters: Iterable[logging.Filter] = (),
) -> bool:
    """Give each named logger (``""`` is the root) one ECS handler in place of its stream
    handlers, and mask secrets in what its other handlers get; idempotent. False when it was
    already in place everywhere."""
    known = process_secrets()
    extra = tuple(filters)
    changed = False
    for name in logger_names:
        logger = logging.getLogger(name or None)
        if any(getattr(h, _INSTALLED, False) for h in logger.handlers):
            continue
        streams = [
            h
            for h in logger.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ]
        if not streams and name:
            continue  # it propagates to the root, which has the handler
        for stream_handler in streams:
            logger.removeHandler(stream_handler)
        for other in logger.handlers:
            other.addFilter(RedactingFilter(known))
        logger.addHandler(ecs_handler(stream, known, extra))
        changed = True
    return changed
