"""The in-process backend, the default: subscribers in this process, nothing to set up.

Events are delivered to every subscription whose pattern matches, in the order ``publish`` was
called (one lock orders the publishes of all threads, so every subscriber sees the events of a
subject in the same order). Each subscription has a bounded queue and the slow subscriber policy
of :class:`~plan2flow.events.bus.Subscription`. A re-publish of an id among the last
``dedupe_window`` ids is recognised and not delivered again, as JetStream's ``Nats-Msg-Id`` does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from plan2flow.events.bus import (
    DEFAULT_BLOCK_SECONDS,
    DEFAULT_MAX_PENDING,
    Handler,
    Outcome,
    Overflow,
    Subscription,
)
from plan2flow.events.envelope import Event


class InProcessBus:
    """Ordered per subject, wildcard subscriptions, bounded queues, duplicate ids dropped."""

    def __init__(self, *, dedupe_window: int = 10_000) -> None:
        self.dedupe_window = dedupe_window
        self.published = 0
        self.duplicates = 0
        self._subscriptions: list[Subscription] = []
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.RLock()

    def publish(self, event: Event) -> Outcome:
        with self._lock:
            if event.id in self._recent:
                self.duplicates += 1
                return "duplicate"
            if self.dedupe_window:
                self._recent[event.id] = None
                if len(self._recent) > self.dedupe_window:
                    self._recent.popitem(last=False)
            self.published += 1
            for subscription in tuple(self._subscriptions):
                if subscription.wants(event.subject):
                    subscription.offer(event)
            return "published"

    def subscribe(
        self,
        pattern: str,
        handler: Handler | None = None,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        block_seconds: float = DEFAULT_BLOCK_SECONDS,
        overflow: Overflow = "report",
    ) -> Subscription:
        subscription = Subscription(
            pattern,
            handler,
            max_pending=max_pending,
            block_seconds=block_seconds,
            overflow=overflow,
            on_close=self._remove,
        )
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": "memory",
                "published": self.published,
                "duplicates": self.duplicates,
                "subscriptions": [s.stats() for s in self._subscriptions],
            }

    def flush(self, timeout: float = 5.0) -> bool:
        """Nothing waits: every publish has reached its subscribers' queues."""
        return True

    def close(self) -> None:
        for subscription in tuple(self._subscriptions):
            subscription.close()
