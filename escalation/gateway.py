"""The redaction gateway: the only way a prompt leaves the machine.

It checks the host against the policy's allow-list and, when the tenant has one, the tenant's
(deny by default on both: :mod:`plan2flow.memory.tenant_hosts`), replaces personal data by
tokens and masks secrets, and restores the answer. It fails closed: a host not allowed, a text
it cannot redact, or an answer whose tokens do not come back intact raise, and nothing is sent
or kept.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Sequence

from plan2flow.compiler.spec.escalation import LOOPBACK_HOSTS, Redaction
from plan2flow.compiler.validate.escalation_rules import host_of
from plan2flow.memory.tenant_hosts import TenantHosts

from .errors import HostDenied, RedactionFailed
from .outbound import Outbound, approved
from .redaction import Redactor, Vault, restore

_LOOPBACK = frozenset(host.strip("[]") for host in LOOPBACK_HOSTS)


class Gateway:
    """Redacts what a remote tier sends and restores what it answers, for one policy."""

    def __init__(
        self,
        redaction: Redaction,
        allowed_hosts: Iterable[str],
        tenant_hosts: TenantHosts | None = None,
    ) -> None:
        patterns = [(extra.name, extra.regex) for extra in redaction.patterns]
        self._redactor = Redactor(redaction.entities, patterns)
        self._allowed = frozenset(host.lower().strip("[]") for host in allowed_hosts)
        self._tenant = tenant_hosts
        self.counts: Counter[str] = Counter()
        """Values replaced, per entity type, over every prompt sent (never the values)."""

    def check_host(self, base_url: str) -> str:
        host = host_of(base_url)
        if host not in self._allowed:
            raise HostDenied(f"host '{host}' is not in the policy's allowed_hosts")
        if self._tenant is not None and not self._tenant.allows(host):
            name = self._tenant.tenant
            raise HostDenied(
                f"host '{host}' is not in the outbound host list of tenant '{name}': "
                f"see plan2flow tenants hosts list --tenant {name}"
            )
        return host

    def outbound(
        self,
        base_url: str,
        messages: Sequence[tuple[str, str]],
        *,
        instructions: str | None = None,
    ) -> Outbound:
        """The messages for ``base_url``, redacted. Any error in redacting fails closed.
        ``instructions``, plan2flow's own system prompt (which explains the tokens and so holds
        token marks), go first and as they are."""
        host = self.check_host(base_url)
        vault = Vault()
        try:
            redacted = tuple((role, self._redactor.redact(text, vault)) for role, text in messages)
            if instructions is not None:
                redacted = (("system", instructions), *redacted)
        except RedactionFailed:
            raise
        except Exception as error:  # a detector's own failure must not let text through
            raise RedactionFailed(f"redaction failed: {type(error).__name__}: {error}") from None
        self.counts.update(vault.counts())
        return approved(host, redacted, vault, redacted=True)

    def preview(self, outbound: Outbound, text: str) -> str:
        """``text`` as it would be sent with ``outbound``'s tokens (its vault is not changed)."""
        return self._redactor.redact(text, copy.deepcopy(outbound.vault))

    def shown(self, text: str) -> str | None:
        """``text`` as a person may see it: personal data as tokens, secrets masked; None when
        it cannot be redacted (fail closed: it is not shown). Nothing is counted."""
        try:
            return self._redactor.redact(text, Vault())
        except Exception:
            return None

    @staticmethod
    def restore(outbound: Outbound, text: str, *, require: Iterable[str] = ()) -> str:
        """An answer with its tokens restored (see :func:`.redaction.restore`)."""
        return restore(text, outbound.vault, require=require)


def local_outbound(
    base_url: str, messages: Sequence[tuple[str, str]], *, instructions: str | None = None
) -> Outbound:
    """Messages for a model on this machine: nothing leaves it, so nothing is redacted; any
    host other than the loopback is refused."""
    host = host_of(base_url)
    if host not in _LOOPBACK:
        raise HostDenied(f"a local tier may only call this machine, not '{host}'")
    sent = tuple(messages) if instructions is None else (("system", instructions), *messages)
    return approved(host, sent, Vault(), redacted=False)
