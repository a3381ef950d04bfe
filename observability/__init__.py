"""``plan2flow.observability``: what operators see of plan2flow, in their tools' formats.

* logs: one Elastic Common Schema JSON line per record (``PLAN2FLOW_LOG_FORMAT=ecs``) with the
  run's ids, secrets masked (:mod:`.logs`, :mod:`.secrets`);
* metrics: Prometheus counters, gauges and histograms fed by the event bus (:mod:`.metrics`,
  :mod:`.feed`), served on ``/metrics`` (:mod:`.serve`);
* traces: OpenTelemetry spans sent by OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
  (:mod:`.tracing`).

Import the module you need: this package loads none of them, so that the command line's
``validate`` and ``compile`` stay light. It imports neither Prefect nor the runtime: the
runtime (``plan2flow.flows``) calls it, and so do the agents, the escalation chain and the
command line.
"""

from __future__ import annotations

from plan2flow.observability.errors import ObservabilityError, ServeError, SloError

__all__ = ["ObservabilityError", "ServeError", "SloError"]
