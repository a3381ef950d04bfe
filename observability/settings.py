"""The environment variables that switch observability on, read without importing its tools
(the command line checks them before paying for OpenTelemetry's import)."""

from __future__ import annotations

import os
from collections.abc import Mapping

METRICS_ENV = "PLAN2FLOW_METRICS"
"""``off``: the runtime keeps no metrics registry (its events still go on the bus)."""
LOG_FORMAT_ENV = "PLAN2FLOW_LOG_FORMAT"
"""``ecs``: one ECS JSON line per log record."""
ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""Either set: spans are sent there by OTLP/HTTP (OpenTelemetry's standard variables)."""


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return any(env.get(name, "").strip() for name in ENDPOINT_ENVS)


def metrics_requested(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(METRICS_ENV, "").strip().lower() not in {"off", "0", "false", "no"}


def ecs_requested(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(LOG_FORMAT_ENV, "").strip().lower() == "ecs"
