"""The event bus's errors.

::

    EventError
    ├── InvalidSubject           a subject, pattern, tenant or label that is not allowed
    ├── InvalidEvent             an envelope or a typed ``data`` that does not validate
    ├── SlowSubscriberError      an in-process subscriber stayed full past the blocking limit
    ├── BusUnavailable           NATS cannot be reached (the admin functions; never a publish)
    ├── UnsupportedServer        the NATS server lacks JetStream or a feature asked for
    └── NatsRequired             an operation that only the NATS backend can do (replay, DLQ)
"""

from __future__ import annotations


class EventError(Exception):
    """The root of the event bus's errors; ``exit_status`` is what the command line exits with."""

    exit_status = 2


class InvalidSubject(EventError, ValueError):
    """A subject, pattern or label that the subject rules do not allow."""


class InvalidEvent(EventError, ValueError):
    """An event whose envelope or typed ``data`` does not validate (or is not JSON)."""


class SlowSubscriberError(EventError):
    """An in-process subscriber's queue stayed full for longer than the publisher may block."""


class BusUnavailable(EventError):
    """The NATS servers cannot be reached."""

    exit_status = 3


class UnsupportedServer(EventError):
    """The NATS server has no JetStream, or is too old for a feature that was asked for."""

    exit_status = 4


class NatsRequired(EventError):
    """The operation needs the NATS backend (``PLAN2FLOW_EVENTS_URL``)."""
