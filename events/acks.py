"""Pipelined JetStream publishes that keep the publisher's order through a broken connection.

:class:`AckInbox` hands messages to the connection without waiting and gives back, for each, a
future of the stream's ack, through a reply inbox of its own. nats-py's ``publish_async`` does
the same, but keeps a slot of its bounded window for good whenever the connection refuses a
publish, which a connection without a reconnect buffer does on purpose (below); here a refused
publish keeps nothing, and the caller's window bounds what is in flight.

A connection that publishes events must not re-send, after a reconnect, anything from before
the break: nats-py would (its reconnect buffer, and the commands it had not yet written when the
connection broke), ahead of the unacknowledged events the bus has put in its spool meanwhile,
so the stream would store later events before earlier ones. :data:`NO_RECONNECT_BUFFER` makes a
publish fail at once while the connection is down, and :func:`forget_unsent`, called when the
connection is lost, drops what was not written; the spool, published in order and deduplicated
by ``Nats-Msg-Id``, is then the only way an unacknowledged event reaches the stream.
"""

from __future__ import annotations

import asyncio
import itertools
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError

NO_RECONNECT_BUFFER = 0
"""nats-py's ``pending_size`` for a publishing connection: no buffering while disconnected."""
STATUS = "Status"
NO_RESPONDERS = "503"


def forget_unsent(nc: Client) -> None:
    """Drop the commands ``nc`` holds but has not written (its connection is gone), so that its
    reconnect does not send them after what was published meanwhile. nats-py has no public call
    for this; ``tests/test_events_faults.py`` breaks a connection holding unsent publishes and
    checks the stream's order, so a nats-py that changes these fields fails there."""
    nc._pending = []
    nc._pending_data_size = 0


class AckInbox:
    """Publishes with ``Nats-Msg-Id`` on one connection; acks come back as futures."""

    def __init__(self, nc: Client, prefix: str) -> None:
        self._nc = nc
        self._prefix = prefix
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[PubAck]] = {}

    @classmethod
    async def open(cls, nc: Client) -> AckInbox:
        inbox = cls(nc, nc.new_inbox())
        await nc.subscribe(f"{inbox._prefix}.*", cb=inbox._reply)
        return inbox

    @property
    def waiting(self) -> int:
        """How many publishes wait for their ack."""
        return len(self._waiting)

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> asyncio.Future[PubAck]:
        """Hand one message to the connection; the future gets the stream's ack, or the
        server's refusal as an exception. Raises at once, keeping nothing, when the connection
        cannot take it."""
        token = str(next(self._tokens))
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        future.add_done_callback(lambda _: self._waiting.pop(token, None))
        try:
            await self._nc.publish(
                subject,
                payload,
                reply=f"{self._prefix}.{token}",
                headers={"Nats-Msg-Id": msg_id},
            )
        except BaseException:
            future.cancel()
            raise
        return future

    async def _reply(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject[len(self._prefix) + 1 :])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get(STATUS) == NO_RESPONDERS:
            future.set_exception(NoStreamResponseError())
            return
        try:
            response = json.loads(msg.data)
            if "error" in response:
                APIError.from_error(response["error"])  # raises the error's own type
            ack = PubAck.from_response(response)
        except Exception as error:
            future.set_exception(error)
            return
        future.set_result(ack)
