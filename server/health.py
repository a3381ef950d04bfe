"""Agent health as a Prefect flow (served every 30 s by `plan2flow agents health --serve`) and as
Prometheus metrics: `plan2flow_agent_up` and `plan2flow_agent_health_latency_seconds`."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from plan2flow.agents.registry import AgentStatus, publish_health, statuses


class HealthMetrics:
    """The gauges one process exports about the agents it checks."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.up = Gauge(
            "plan2flow_agent_up", "1 if the agent's last health check passed", ["agent"],
            registry=registry,
        )  # fmt: skip
        self.latency = Gauge(
            "plan2flow_agent_health_latency_seconds",
            "Seconds the agent's last health check took",
            ["agent"],
            registry=registry,
        )

    def record(self, items: list[AgentStatus]) -> None:
        for item in items:
            self.up.labels(item.slug).set(1 if item.healthy else 0)
            self.latency.labels(item.slug).set(item.latency_seconds)


_METRICS: HealthMetrics | None = None


def metrics() -> HealthMetrics:
    global _METRICS
    if _METRICS is None:
        _METRICS = HealthMetrics()
    return _METRICS


@flow(name="plan2flow-agent-health")
def check_agents() -> list[dict[str, Any]]:
    """Check every agent, publish `plan2flow.agent.health` events, update the metrics."""
    items = statuses()
    publish_health(items)
    metrics().record(items)
    return [
        {"agent": i.slug, "healthy": i.healthy, "detail": i.detail, "latency": i.latency_seconds}
        for i in items
    ]
