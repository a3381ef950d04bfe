"""What the in-process audit feed costs per event: a run's events on the in-process bus journaled
in project memory (SQLite, a fresh ``PLAN2FLOW_HOME``), batched as the runtime does it against
one transaction per event (the baseline, measured in the same run) and a subscriber that does
nothing (the bus alone).

Usage::

    python bench/audit_feed.py [--n 2000] [--rounds 3]

Prints one JSON line: for each way, the median over the rounds of the microseconds per event,
from the first publish to the last event handled (the publisher never waits for the journal:
this is the time the subscriber's thread spends, which a run pays through the GIL and the disk).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from plan2flow.events import Batched, Event, InProcessBus, RunContext
from plan2flow.events.bus import Handler
from plan2flow.memory.audit_feed import MAX_BATCH, batch_handler, feed_handler
from plan2flow.memory.db.engine import Database, configured_database
from plan2flow.memory.db.models import Tenant
from plan2flow.memory.settings import memory_settings

TENANT = "bench"


def run_events(n: int, run: str) -> list[Event]:
    """`n` task events of one run, as the runtime publishes them."""
    ctx = RunContext(tenant=TENANT, plan="etl", graphhash="sha256:ab", flowrunid=run)
    return [
        ctx.task("started", f"t{i // 2}", tasktype="shell")
        if i % 2 == 0
        else ctx.task("completed", f"t{i // 2}", duration_seconds=0.25)
        for i in range(n)
    ]


def fresh_database(home: Path) -> Database:
    database = configured_database(memory_settings({"PLAN2FLOW_HOME": str(home)}))
    with database.connect() as connection:
        connection.execute(sa.insert(Tenant).values(**Tenant(name=TENANT).model_dump()))
        connection.commit()
    return database


def per_event_us(handler: Callable[[Database], Handler], n: int, round_: int) -> float:
    """Microseconds per event from the first publish to the last event handled."""
    with tempfile.TemporaryDirectory(prefix="plan2flow-bench-feed-") as home:
        database = fresh_database(Path(home))
        bus = InProcessBus()
        events = run_events(n, f"r{round_}")
        subscription = bus.subscribe(f"plan2flow.{TENANT}.>", handler(database), max_pending=n)
        try:
            start = time.perf_counter()
            for event in events:
                bus.publish(event)
            if not subscription.wait_handled(n, timeout=600):
                raise SystemExit(f"only {subscription.delivered} of {n} events handled")
            elapsed = time.perf_counter() - start
            if subscription.errors:
                raise SystemExit(f"{subscription.errors} events were not recorded")
        finally:
            subscription.close()
            database.dispose()
    return elapsed / n * 1e6


def ways() -> dict[str, Callable[[Database], Handler]]:
    def nothing(database: Database) -> Handler:
        def handle(events: Sequence[Event]) -> None:
            return None

        return Batched(handle)

    return {
        "bus_only": nothing,
        "one_transaction_per_event": lambda db: feed_handler(db, TENANT, "bench"),
        "batched": lambda db: Batched(batch_handler(db, TENANT, "bench"), MAX_BATCH),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"events": args.n, "rounds": args.rounds}
    samples: dict[str, list[float]] = {name: [] for name in ways()}
    for round_ in range(args.rounds):  # the ways take turns: a load change hits each alike
        for name, handler in ways().items():
            samples[name].append(per_event_us(handler, args.n, round_))
    for name, values in samples.items():
        results[f"{name}_us_per_event"] = round(statistics.median(values), 1)
        results[f"{name}_rounds"] = [round(value, 1) for value in values]
    baseline = results["one_transaction_per_event_us_per_event"]
    results["batched_vs_per_event"] = round(results["batched_us_per_event"] / baseline, 3)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
