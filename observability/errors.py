"""The root error of ``plan2flow.observability``: each says itself in one line and carries the
exit status the command line ends with."""

from __future__ import annotations


class ObservabilityError(Exception):
    """Every error of the observability part."""

    exit_status = 2


class ServeError(ObservabilityError):
    """The metrics endpoint could not listen (address in use, not allowed)."""


class SloError(ObservabilityError):
    """An SLO report could not be made (Prometheus unreachable, a query refused)."""
