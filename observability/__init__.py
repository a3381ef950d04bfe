"""``plan2flow.observability``: what operators see of plan2flow, in their tools' formats.

* logs: one Elastic Common Schema JSON line per record (``PLAN2FLOW_LOG_FORMAT=ecs``) with the
  run's ids, secrets masked (:mod:`.logs`, :mod:`.secrets`);
* metrics: Prometheus counters, gauges and histograms fed by the event bus (:mod:`.metrics`,
  :mod:`.feed`), served on ``/metrics`` (:mod:`.serve`);
* traces: OpenTelemetry spans sent by OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
  (:mod:`.tracing`).

It imports neither Prefect nor the runtime: the runtime (``plan2flow.flows``) calls it, and so
do the agents, the escalation chain and the command line.
"""

from __future__ import annotations

from plan2flow.observability.errors import ObservabilityError, ServeError, SloError
from plan2flow.observability.logs import LogIds, bind, bound, ecs_requested, install
from plan2flow.observability.metrics import RunMetrics, process_metrics
from plan2flow.observability.secrets import KnownSecrets, is_secret_name, process_secrets

__all__ = [
    "KnownSecrets",
    "LogIds",
    "ObservabilityError",
    "RunMetrics",
    "ServeError",
    "SloError",
    "bind",
    "bound",
    "ecs_requested",
    "install",
    "is_secret_name",
    "process_metrics",
    "process_secrets",
]
