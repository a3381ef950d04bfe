"""P2F110: escalation policies that could not run as written.

Each place that writes a policy (``defaults``, a ``generate_code`` task, a component) is checked
with the fields it inherits from ``defaults`` (:func:`merge_policies`), and each problem points at
the place that writes the field: a component's ``variants: 1`` next to a remote tier of the
defaults is reported on the component.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from ..errors import Diagnostic, diagnostic
from ..spec.escalation import (
    ENTITIES,
    LOOPBACK_HOSTS,
    TIER_KINDS,
    EscalationPolicy,
    Tier,
    merge_policies,
)
from .schema import ValidatedPlan

BUILT_IN_ENTITIES = frozenset({*(entity.upper() for entity in ENTITIES), "SECRET"})
"""Token names the gateway uses itself; an extra pattern may not take one."""


def host_of(url: str) -> str:
    """The host a URL names, lowercase, IPv6 without brackets.

    >>> host_of("https://API.example.com:8443/v1"), host_of("http://[::1]:8080/v1")
    ('api.example.com', '::1')
    """
    return (urlsplit(url).hostname or "").lower()


def _plain_host(host: str) -> str:
    return host.lower().removeprefix("[").removesuffix("]")


class _Place:
    """Where each field of an effective policy is written: the place's own policy, or the
    defaults' policy."""

    def __init__(
        self, pointer: str, own: EscalationPolicy, default: EscalationPolicy | None = None
    ) -> None:
        self.pointer = pointer
        self.own = own
        self.default = default

    def of(self, field: str) -> str:
        if field not in self.own.model_fields_set and (
            self.default is not None and field in self.default.model_fields_set
        ):
            return f"/defaults/escalation/{field}"
        return f"{self.pointer}/{field}"


def _order(tiers: list[Tier], where: str) -> Iterator[Diagnostic]:
    seen: list[str] = []
    for index, tier in enumerate(tiers):
        kind = tier.kind
        if kind in seen and kind != "remote":
            yield diagnostic(
                "P2F110",
                f"the chain has a second '{kind}' tier",
                f"{where}/{index}",
                hint="a chain has at most one 'local' and one 'human' tier",
            )
        elif seen and TIER_KINDS.index(kind) < TIER_KINDS.index(seen[-1]):
            yield diagnostic(
                "P2F110",
                f"tier {index} is '{kind}' after '{seen[-1]}'",
                f"{where}/{index}",
                hint="order the tiers local, then remote, then human",
            )
        seen.append(kind)


def _hosts(policy: EscalationPolicy, place: _Place) -> Iterator[Diagnostic]:
    allowed = {_plain_host(host) for host in policy.allowed_hosts}
    where = place.of("tiers")
    for index, tier in enumerate(policy.tiers):
        if tier.remote is not None:
            host = host_of(tier.remote.base_url)
            if host not in allowed:
                yield diagnostic(
                    "P2F110",
                    f"the remote tier calls '{host}', which is not in allowed_hosts "
                    "(outbound hosts are denied by default)",
                    f"{where}/{index}/remote/base_url",
                    hint=f"add '{host}' to escalation.allowed_hosts",
                )
        elif tier.local is not None and tier.local.base_url is not None:
            host = host_of(tier.local.base_url)
            if host not in {_plain_host(h) for h in LOOPBACK_HOSTS}:
                yield diagnostic(
                    "P2F110",
                    f"a local tier runs on this machine, but '{host}' is not 127.0.0.1, "
                    "localhost or ::1",
                    f"{where}/{index}/local/base_url",
                    hint="call other hosts from a 'remote' tier, which redacts what it sends",
                )


def _remote_needs(policy: EscalationPolicy, place: _Place) -> Iterator[Diagnostic]:
    remotes = [(i, tier.remote) for i, tier in enumerate(policy.tiers) if tier.remote is not None]
    if remotes and policy.variants < 2:
        yield diagnostic(
            "P2F110",
            f"a remote tier needs at least 2 competing variants; variants is {policy.variants}",
            place.of("variants"),
            hint="set variants: 2 or more, or remove the remote tier",
        )
    for index, remote in remotes:
        if remote.price_per_1k_tokens > 0 and policy.budget_usd == 0:
            yield diagnostic(
                "P2F110",
                f"the remote tier costs {remote.price_per_1k_tokens:g} USD per 1,000 tokens, "
                "but budget_usd is 0: it could never be called",
                f"{place.of('tiers')}/{index}/remote/price_per_1k_tokens",
                hint="set escalation.budget_usd to what one escalation may spend",
            )


def _patterns(policy: EscalationPolicy, place: _Place) -> Iterator[Diagnostic]:
    where = place.of("redact")
    for index, extra in enumerate(policy.redact.patterns):
        if extra.name in BUILT_IN_ENTITIES:
            yield diagnostic(
                "P2F110",
                f"pattern name '{extra.name}' is a token name of the gateway itself",
                f"{where}/patterns/{index}/name",
                hint="name the pattern after what it finds, such as 'CUSTOMER_ID'",
            )
        try:
            compiled = re.compile(extra.regex)
        except re.error as error:
            yield diagnostic(
                "P2F110",
                f"pattern '{extra.name}' is not a regular expression: {error}",
                f"{where}/patterns/{index}/regex",
                hint="write a Python regular expression, such as 'CUST-[0-9]{6}'",
            )
            continue
        if compiled.fullmatch(""):
            yield diagnostic(
                "P2F110",
                f"pattern '{extra.name}' matches empty text",
                f"{where}/patterns/{index}/regex",
                hint="use '+' rather than '*' so that every match is something to redact",
            )


def _weights(policy: EscalationPolicy, place: _Place) -> Iterator[Diagnostic]:
    if not any(policy.weights.model_dump().values()):
        yield diagnostic(
            "P2F110",
            "every weight is 0: no variant could score above another",
            place.of("weights"),
            hint="give the tests (or another signal) a weight above 0",
        )


def _check(policy: EscalationPolicy, place: _Place) -> Iterator[Diagnostic]:
    yield from _order(policy.tiers, place.of("tiers"))
    yield from _hosts(policy, place)
    yield from _remote_needs(policy, place)
    yield from _patterns(policy, place)
    yield from _weights(policy, place)


def _places(plan: ValidatedPlan) -> Iterator[_Place]:
    default = plan.spec.defaults.escalation
    if default is not None:
        yield _Place("/defaults/escalation", default)
    for task, pointer in zip(plan.spec.tasks, plan.task_pointers, strict=True):
        own = getattr(task, "escalation", None)
        if own is not None:
            yield _Place(f"{pointer}/escalation", own, default)
    for component, pointer in zip(plan.spec.components, plan.component_pointers, strict=True):
        if component.escalation is not None:
            yield _Place(f"{pointer}/escalation", component.escalation, default)


def check_escalation(plan: ValidatedPlan) -> list[Diagnostic]:
    """Every P2F110 problem of the plan's valid parts, each once."""
    found: dict[Diagnostic, None] = {}
    for place in _places(plan):
        effective = merge_policies(place.default, place.own) or place.own
        for problem in _check(effective, place):
            found.setdefault(problem)
    return list(found)
