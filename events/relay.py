"""Events published in other processes, delivered to this process's in-process bus.

The in-process bus reaches only subscribers in its own process. A run whose tasks execute in
other processes (a process pool's workers) starts this process's :class:`Relay` once and
passes its :class:`RelayEndpoint` with the tasks; a task in another process then publishes
through a :class:`RelayedPublisher`: each event goes over a local socket (authenticated by the
endpoint's key) to the relay, which publishes it here and answers with the outcome. The
publisher waits for that answer, so when a task has returned, its events are published here,
before anything the run does after it.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from typing import cast, get_args

from plan2flow.events.bus import EventBus, Outcome, process_bus
from plan2flow.events.envelope import Event, decode_event
from plan2flow.events.errors import InvalidEvent

LOGGER = logging.getLogger("plan2flow.events")
OUTCOMES = frozenset(get_args(Outcome))


@dataclass(frozen=True)
class RelayEndpoint:
    """Where a process's relay listens (a Unix socket in a private directory) and its key."""

    address: str
    key: str

    def connect(self) -> Connection:
        return Client(self.address, family="AF_UNIX", authkey=bytes.fromhex(self.key))


class Relay:
    """Publishes on ``bus`` the events other processes send it, in the order each sends them."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.relayed = 0
        self.pid = os.getpid()
        key = secrets.token_bytes(32)
        self._listener = Listener(family="AF_UNIX", authkey=key)
        self.endpoint = RelayEndpoint(str(self._listener.address), key.hex())
        self._closed = False
        threading.Thread(target=self._accept, name="plan2flow-events-relay", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection = self._listener.accept()
            except Exception as error:  # a failed handshake, or the listener closed
                if not self._closed:
                    LOGGER.warning("event relay: a connection was refused: %s", error)
                continue
            threading.Thread(
                target=self._serve, args=(connection,), name="plan2flow-events-relayed", daemon=True
            ).start()

    def _serve(self, connection: Connection) -> None:
        with connection:
            while True:
                try:
                    data = connection.recv_bytes()
                except (EOFError, OSError):
                    return
                try:
                    outcome: str = self.bus.publish(decode_event(data))
                    self.relayed += 1
                except InvalidEvent as error:
                    LOGGER.error("event relay: not an event: %s", error)
                    outcome = "dropped"
                except Exception:
                    LOGGER.exception("event relay: publishing a relayed event failed")
                    outcome = "dropped"
                try:
                    connection.send_bytes(outcome.encode())
                except OSError:
                    return

    def close(self) -> None:
        self._closed = True
        self._listener.close()


_RELAY: Relay | None = None
_RELAY_LOCK = threading.Lock()


def process_relay() -> Relay:
    """This process's relay into :func:`~plan2flow.events.bus.process_bus`, started once."""
    global _RELAY
    with _RELAY_LOCK:
        if _RELAY is None or _RELAY.pid != os.getpid():  # a forked child has no relay thread
            _RELAY = Relay(process_bus())
        return _RELAY


class RelayedPublisher:
    """Publishes to another process's in-process bus through its relay; one connection,
    shared by this process's threads in turn."""

    def __init__(self, endpoint: RelayEndpoint) -> None:
        self.endpoint = endpoint
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def publish(self, event: Event) -> Outcome:
        """The outcome of the publish in the other process. Raises ``OSError`` (or
        ``EOFError``) when the relay cannot be reached."""
        with self._lock:
            if self._connection is None:
                self._connection = self.endpoint.connect()
            try:
                self._connection.send_bytes(event.to_json())
                answer = self._connection.recv_bytes().decode()
            except BaseException:
                self._connection.close()
                self._connection = None
                raise
        if answer not in OUTCOMES:
            raise OSError(f"the event relay answered {answer!r}")
        return cast(Outcome, answer)


_PUBLISHERS: dict[RelayEndpoint, RelayedPublisher] = {}


def relayed(endpoint: RelayEndpoint) -> RelayedPublisher:
    """The publisher to ``endpoint`` of this process (one per endpoint)."""
    with _RELAY_LOCK:
        publisher = _PUBLISHERS.get(endpoint)
        if publisher is None:
            publisher = _PUBLISHERS[endpoint] = RelayedPublisher(endpoint)
        return publisher
