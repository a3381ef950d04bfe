"""Events as the session's Prefect API streams them to a subscriber (its `/events/out` websocket).

The session's API persists no events (its event persister is off: recording them was a third of
what it spent on the suite's runs), so a test that checks what reaches Prefect subscribes
before the run, as the Prefect UI's event feed does, instead of querying `/events/filter`."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from types import TracebackType
from typing import Any

from prefect.events import emit_event
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter

PROBE = "plan2flow.test.probe"


class Subscription:
    """Every event whose name starts with one of `prefixes`, from subscribing until closing."""

    def __init__(self, prefixes: list[str], deadline: float = 120.0) -> None:
        self._filter = EventFilter(event=EventNameFilter(prefix=[*prefixes, PROBE]))
        self._deadline = deadline
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="prefect-events", daemon=True)

    def __enter__(self) -> Subscription:
        self._thread.start()
        self._wait_until_streaming()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(30)

    def events(self) -> list[dict[str, Any]]:
        """The events received so far, as JSON."""
        if self._failure is not None:
            raise self._failure
        with self._lock:
            return list(self._events)

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self._consume())
        except BaseException as error:  # reported by events()
            self._failure = error
        finally:
            self._loop.close()

    async def _consume(self) -> None:
        self._task = asyncio.current_task()
        try:
            async with get_events_subscriber(filter=self._filter) as subscriber:
                async for event in subscriber:
                    with self._lock:
                        self._events.append(event.model_dump(mode="json"))
        except asyncio.CancelledError:
            return

    def _wait_until_streaming(self) -> None:
        """A subscription counts once a probe emitted after it arrives: the server registers a
        subscriber's filter some time after the websocket opens."""
        resource = {"prefect.resource.id": f"{PROBE}.{uuid.uuid4()}"}
        deadline = time.monotonic() + self._deadline
        while time.monotonic() < deadline:
            emit_event(event=PROBE, resource=resource)
            until = time.monotonic() + 2
            while time.monotonic() < until:
                if any(e["resource"] == resource for e in self.events()):
                    return
                time.sleep(0.1)
        raise AssertionError(f"the Prefect API streamed no event within {self._deadline} s")
