"""What may be sent to a model: only what the gateway made (:class:`Outbound`).

The remote client accepts nothing else, and only for the host the gateway approved; so every
text that leaves the machine went through the gateway's host check and redaction.
"""

from __future__ import annotations

import dataclasses

from .redaction import Vault

_APPROVED = object()
"""The gateway's mark; the client refuses an :class:`Outbound` without it."""


@dataclasses.dataclass(frozen=True)
class Outbound:
    """Messages ready to send to ``host``, with the vault that restores the answer."""

    host: str
    messages: tuple[tuple[str, str], ...]
    vault: Vault = dataclasses.field(compare=False)
    redacted: bool
    mark: object = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def approved(self) -> bool:
        return self.mark is _APPROVED

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


def approved(
    host: str, messages: tuple[tuple[str, str], ...], vault: Vault, *, redacted: bool
) -> Outbound:
    """An :class:`Outbound` carrying the gateway's mark: for :mod:`.gateway` only."""
    return Outbound(host, messages, vault, redacted, _APPROVED)
