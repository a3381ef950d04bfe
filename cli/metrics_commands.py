"""`plan2flow metrics serve`: Prometheus's ``/metrics`` for the runs plan2flow sees.

With ``PLAN2FLOW_EVENTS_URL`` set, a durable consumer counts the events of every process from
NATS JetStream (and the DLQ's size is read at each scrape); without it, the in-process bus of
this process feeds it. Ends with Ctrl-C (status 0) or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from .app import app, consoles, say

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

metrics_app = typer.Typer(
    help="Prometheus metrics of plan runs (see docs/observability.md).", no_args_is_help=True
)
app.add_typer(metrics_app, name="metrics")


@metrics_app.command("serve")
def serve(
    port: Annotated[int, typer.Option("--port", help="TCP port; 0 picks a free one.")] = 9464,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Serve /metrics until interrupted; the first line says where."""
    from plan2flow.events import process_bus
    from plan2flow.observability.feed import follow, follow_nats, nats_requested
    from plan2flow.observability.metrics import process_metrics
    from plan2flow.observability.serve import MetricsServer

    out, _ = consoles()
    metrics = process_metrics()
    stop = threading.Event()
    if nats_requested(os.environ):
        follow_nats(metrics, stop, os.environ)
        source = "NATS JetStream"
    else:
        follow(process_bus(), metrics)
        source = "this process's bus"
    _follow_budgets(metrics.registry)
    server = MetricsServer(metrics.registry, host, port)
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    say(out, f"serving {server.url} (events from {source})")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.close()
        signal.signal(signal.SIGTERM, previous)


def _follow_budgets(registry: CollectorRegistry) -> None:
    """The budget gauges, read from project memory at each scrape; without a database the
    metrics are served all the same (and a line says so)."""
    from plan2flow.memory.db.engine import configured_database
    from plan2flow.memory.errors import MemoryStoreError
    from plan2flow.observability.budgets import register_budgets

    try:
        database = configured_database()
    except MemoryStoreError as error:
        say(consoles()[1], f"plan2flow: budgets are not served: {error}")
        return
    register_budgets(registry, database)
