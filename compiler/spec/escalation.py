"""`escalation`: what a code-producing task does when its result is not good enough.

A policy is written in `defaults` (for every `generate_code` task) and on a `generate_code` task or
a component, whose fields replace the defaults' one by one (:func:`merge_policies`). The effective
policy of each task is recorded in the TaskGraph, so it is hashed and shows in `plan2flow diff`;
`plan2flow.escalation` runs it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from .approval import RespondentName
from .base import Model, pattern

SIGNALS: tuple[str, ...] = ("tests", "parses", "types", "lint", "agreement")
"""The score's signals, in order of trust."""

ENTITIES: tuple[str, ...] = ("email", "ip_address", "phone_number")
"""Personal data the redaction gateway can replace by tokens and restore in the answer."""

TIER_KINDS: tuple[str, ...] = ("local", "remote", "human")
"""The kinds of tier, in the only order a chain may take them."""

LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
"""Hosts a `local` tier may name: nothing sent there leaves the machine."""

BaseUrl = Annotated[
    str,
    StringConstraints(
        pattern=pattern(
            r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?(/[^\s?#]*)?$",
            "an http(s) URL without query or fragment, such as 'https://api.openai.com/v1'",
        ),
        max_length=500,
    ),
]

HostName = Annotated[
    str,
    StringConstraints(
        pattern=pattern(
            r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)$",
            "a host name or IP address, without scheme or port, such as 'api.openai.com'",
        ),
        max_length=253,
    ),
]

EnvName = Annotated[
    str,
    StringConstraints(
        pattern=pattern(
            r"^[A-Z_][A-Z0-9_]*$",
            "an environment variable name (uppercase letters, digits and '_')",
        ),
        max_length=100,
    ),
]

EntityName = Annotated[
    str,
    StringConstraints(
        pattern=pattern(
            r"^[A-Z][A-Z0-9_]*$", "an entity name in uppercase letters, digits and '_'"
        ),
        max_length=40,
    ),
]

Seconds = Annotated[float, Field(gt=0, le=604800)]
Weight = Annotated[float, Field(ge=0, le=100)]


class Weights(Model):
    """How much each signal counts in a variant's score (normalized over the signals measured)."""

    tests: Weight = 0.5
    """The pass rate of the task's tests (the examples of its spec)."""
    parses: Weight = 0.15
    """The code parses and imports (code that does not parse scores 0 whatever the weights)."""
    types: Weight = 0.15
    """Fewer type errors (mypy) score higher; 5 or more score 0."""
    lint: Weight = 0.1
    """Fewer lint findings (ruff) score higher; 10 or more score 0."""
    agreement: Weight = 0.1
    """The share of the other variants that pass the same tests."""


class LocalTier(Model):
    """The local agent: the template generator, or a local model when `base_url` is set."""

    base_url: BaseUrl | None = None
    """An OpenAI-compatible server on this machine (127.0.0.1, localhost or ::1)."""
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    """The model to ask at `base_url`."""
    timeout_s: Seconds = 60.0


class RemoteTier(Model):
    """A language model behind an OpenAI-compatible chat-completions endpoint."""

    base_url: BaseUrl
    """Such as `https://api.openai.com/v1`; its host must be in `allowed_hosts`."""
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    api_key_env: EnvName | None = None
    """The environment variable that holds the API key; the key is never written in a plan."""
    timeout_s: Seconds = 60.0
    """Seconds to wait for an answer."""
    connect_timeout_s: Seconds = 5.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Retries after connection errors, 408, 409, 429 and 5xx."""
    max_retry_after_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    """The longest server-requested wait honoured; a longer one escalates instead of sleeping."""
    price_per_1k_tokens: Annotated[float, Field(ge=0, le=1000)] = 0.0
    """US dollars per 1,000 tokens, prompt and completion alike."""
    max_tokens: Annotated[int, Field(ge=1, le=200000)] = 2048
    """The longest answer asked for (it bounds the cost of a call before it is made)."""


class HumanTier(Model):
    """A person decides (a Prefect pause with a typed form)."""

    timeout_s: Seconds = 86400.0
    mode: Literal["pause", "suspend"] = "pause"
    """`suspend` is taken as `pause`: the chain runs in a task; Prefect suspends only flows."""
    respondents: Annotated[list[RespondentName], Field(max_length=64)] = []
    """Who may answer the tier's form (as for approvals); empty: anyone."""


class Tier(Model):
    """One step of the chain: exactly one of `local`, `remote` and `human`."""

    local: LocalTier | None = None
    remote: RemoteTier | None = None
    human: HumanTier | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Tier:
        if sum(kind is not None for kind in (self.local, self.remote, self.human)) != 1:
            raise ValueError("a tier needs exactly one of 'local', 'remote' and 'human'")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in TIER_KINDS if getattr(self, kind) is not None)


class ExtraPattern(Model):
    """A project-specific kind of personal data, replaced by `«NAME_n»` tokens."""

    name: EntityName
    regex: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    """A Python regular expression; its whole match is replaced."""


class Redaction(Model):
    """What the redaction gateway replaces before anything leaves the machine."""

    entities: list[Literal["email", "ip_address", "phone_number"]] = [
        "email",
        "ip_address",
        "phone_number",
    ]
    """Personal data replaced by tokens and restored in the answer."""
    patterns: Annotated[list[ExtraPattern], Field(max_length=32)] = []
    secrets: Literal["mask"] = "mask"
    """Keys, tokens, private keys, `.env` values, high-entropy strings: masked, never restored
    (generated code reads them from the environment instead)."""


def _default_tiers() -> list[Tier]:
    return [Tier(local=LocalTier()), Tier(human=HumanTier())]


class EscalationPolicy(Model):
    """When and how a task's result escalates: local agent → remote model → human."""

    threshold: Annotated[float, Field(ge=0, le=1)] = 0.75
    """The score (0 to 1) a result needs to be kept without escalating."""
    variants: Annotated[int, Field(ge=1, le=8)] = 2
    """Competing variants asked of each model tier (at least 2 when a remote tier runs)."""
    weights: Weights = Weights()
    tiers: Annotated[list[Tier], Field(min_length=1, max_length=8)] = Field(
        default_factory=_default_tiers
    )
    """In order: `local`, then `remote` ones, then `human`."""
    redact: Redaction = Redaction()
    budget_usd: Annotated[float, Field(ge=0, le=100000)] = 0.0
    """The most the remote tiers may spend on one escalation; checked before each call."""
    allowed_hosts: Annotated[list[HostName], Field(max_length=64)] = []
    """Hosts a remote tier may call; every other host is denied."""


def merge_policies(
    default: EscalationPolicy | None, own: EscalationPolicy | None
) -> EscalationPolicy | None:
    """A task's effective policy: the fields it writes replace those of `defaults`.

    >>> base = EscalationPolicy(threshold=0.9, variants=3)
    >>> merged = merge_policies(base, EscalationPolicy(variants=4))
    >>> (merged.threshold, merged.variants)
    (0.9, 4)
    """
    if own is None or default is None:
        return own or default
    written = {name: getattr(own, name) for name in own.model_fields_set}
    return default.model_copy(update=written)


def policy_record(policy: EscalationPolicy) -> dict[str, object]:
    """The policy as the TaskGraph records it: every default applied, each tier by its kind."""
    record = policy.model_dump(mode="json")
    record["tiers"] = [
        {kind: value for kind, value in tier.items() if value is not None}
        for tier in record["tiers"]
    ]
    return record
