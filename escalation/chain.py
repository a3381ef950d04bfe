"""The chain: local agent → remote models with competing variants → a person.

Tiers run in the policy's order. After each, every variant so far is scored (the variants of all
tiers compete: agreement counts across them), and the best is kept once it reaches the
threshold. A tier that cannot run (no API key, a host not allowed, the budget spent, a server
asking for a longer wait than allowed) hands over to the next one; a redaction that fails, or a
token that does not come back, goes straight to the human tier: nothing is sent, nothing kept.
Until the human-in-the-loop step exists, reaching the human tier ends the chain as a failure
that names the tier and why.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from plan2flow.compiler.spec.escalation import EscalationPolicy, Tier

from .asking import TierAnswers, ask_tier
from .budget import Budget
from .errors import HostDenied, ModelCallFailed, RedactionFailed
from .gateway import Gateway, local_outbound
from .prompt import SYSTEM, messages
from .remote import ChatClient, Sleep
from .scoring import Contender, best, score_all
from .signals import measure
from .variants import CodeTask, Variant

OnEvent = Callable[[str, dict[str, Any]], None]


@dataclasses.dataclass
class ChainResult:
    """How an escalation ended: the variant kept (if any), the tier reached and why."""

    task_id: str
    outcome: str
    """``kept`` when a variant reached the threshold, else ``failed``."""
    tier_reached: str
    reason: str
    threshold: float
    variants: list[Variant]
    winner: Variant | None = None
    redactions: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    @property
    def cost_usd(self) -> float:
        return round(sum(v.cost_usd for v in self.variants), 10)


@dataclasses.dataclass
class Surroundings:
    """What the chain takes from its caller: where to write, the environment (API keys), the
    clock to wait with, randomness, and where its events go."""

    workdir: Path
    environ: Mapping[str, str]
    sleep: Sleep = time.sleep
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    on_event: OnEvent = lambda _name, _data: None


def _score(task: CodeTask, policy: EscalationPolicy, variants: list[Variant], where: Path) -> None:
    """Measure the variants not measured yet, then score them all against each other."""
    weights = policy.weights.model_dump()
    wanted = frozenset(name for name, weight in weights.items() if weight > 0) | {"parses"}
    for variant in variants:
        if variant.files is None or variant.measured is not None:
            continue
        directory = where / variant.label
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in variant.files.items():
            (directory / name).write_text(text, encoding="utf-8")
        variant.measured = measure(
            directory,
            task.module,
            test_file=f"test_{task.module}.py",
            dependency_paths=task.dependency_paths,
            signals=wanted,
        )
    for variant, scored in zip(
        variants, score_all([v.measured for v in variants], weights), strict=True
    ):
        variant.values, variant.score = scored.values, scored.score


def _check(task: CodeTask, variants: list[Variant], threshold: float, where: Path) -> None:
    """Run the downstream checks (validate, test) on the variants that could be kept: those
    with code whose score reaches the threshold (the checks cost a second or more each)."""
    if task.check is None:
        return
    for variant in variants:
        if variant.files is None or variant.checked or variant.score < threshold:
            continue
        variant.checks, variant.checked = task.check(where / variant.label), True


def _leader(variants: list[Variant], gated: bool) -> Variant | None:
    """The best variant; with downstream checks, the best of those that pass them."""
    eligible = [v for v in variants if not gated or (v.checked and v.checks is None)]
    index = best([Contender(v.score, v.passed, v.cost_usd) for v in eligible])
    return None if index is None else eligible[index]


class _Run:
    """One escalation in progress."""

    def __init__(
        self,
        task: CodeTask,
        policy: EscalationPolicy,
        surroundings: Surroundings,
        local: Variant | None,
    ) -> None:
        self.task, self.policy, self.around = task, policy, surroundings
        self.local = local
        self.variants: list[Variant] = []
        self.budget = Budget(policy.budget_usd)
        self.gateway = Gateway(policy.redact, policy.allowed_hosts)
        self.started = time.perf_counter()

    def result(self, outcome: str, tier: str, reason: str, winner: Variant | None) -> ChainResult:
        return ChainResult(
            task_id=self.task.task_id,
            outcome=outcome,
            tier_reached=tier,
            reason=reason,
            threshold=self.policy.threshold,
            variants=self.variants,
            winner=winner,
            redactions=dict(sorted(self.gateway.counts.items())),
            seconds=round(time.perf_counter() - self.started, 3),
        )

    def run(self) -> ChainResult:
        policy = self.policy
        self.around.on_event(
            "started",
            {
                "tiers": [tier.kind for tier in policy.tiers],
                "threshold": policy.threshold,
                "variants": policy.variants,
            },
        )
        why = "no tier ran"
        for index, tier in enumerate(policy.tiers):
            if tier.human is not None:
                return self.result("failed", "human", _human_reason(why), None)
            answers = self._tier(index, tier)
            self.variants.extend(answers.variants)
            where = self.around.workdir / "variants"
            _score(self.task, policy, self.variants, where)
            _check(self.task, self.variants, policy.threshold, where)
            for variant in answers.variants:
                self.around.on_event("variant_scored", _variant_event(variant))
            if answers.needs_human is not None:
                human = "human" if any(t.human for t in policy.tiers) else tier.kind
                return self.result("failed", human, _human_reason(answers.needs_human), None)
            gated = self.task.check is not None
            leader = _leader(self.variants, gated)
            if leader is not None and leader.score >= policy.threshold:
                reason = f"{leader.label} scores {leader.score:.3f} >= threshold {policy.threshold}"
                if gated:
                    reason += " and passes the downstream checks"
                return self.result("kept", tier.kind, reason, leader)
            failing = _failed_checks(self.variants) if gated and leader is None else None
            if failing is not None:
                why = failing + (f" ({answers.stopped})" if answers.stopped else "")
            else:
                best_any = _leader(self.variants, False) if leader is None else leader
                why = _shortfall(tier.kind, best_any, policy.threshold, answers.stopped)
        return self.result("failed", policy.tiers[-1].kind, why + "; no tier is left", None)

    def _tier(self, index: int, tier: Tier) -> TierAnswers:
        prompt = messages(self.task.spec, self.task.dependencies, self.task.feedback)
        try:
            if tier.local is not None:
                if tier.local.base_url is None:
                    return TierAnswers([self.local] if self.local is not None else [])
                client = self._client(ChatClient.for_local(tier.local))
                outbound = local_outbound(tier.local.base_url, prompt, instructions=SYSTEM)
                gateway = None
            else:
                assert tier.remote is not None  # a tier is exactly one kind (the compiler's rule)
                client = self._client(ChatClient.for_remote(tier.remote, self.around.environ))
                outbound, gateway = (
                    self.gateway.outbound(tier.remote.base_url, prompt),
                    self.gateway,
                )
        except RedactionFailed as error:
            return TierAnswers([], needs_human=f"redaction failed: {error}")
        except (ModelCallFailed, HostDenied) as error:
            return TierAnswers([], stopped=str(error))
        try:
            return ask_tier(
                self.task,
                tier_index=index,
                kind=tier.kind,
                client=client,
                outbound=outbound,
                gateway=gateway,
                count=self.policy.variants,
                budget=self.budget,
            )
        finally:
            client.close()

    def _client(self, client: ChatClient) -> ChatClient:
        client.sleep, client.rng = self.around.sleep, self.around.rng
        return client


def _shortfall(kind: str, leader: Variant | None, threshold: float, stopped: str | None) -> str:
    if leader is None:
        found = f"the {kind} tier made no variant"
    else:
        found = f"the best variant, {leader.label}, scores {leader.score:.3f} < {threshold}"
    return found + (f" ({stopped})" if stopped else "")


def _failed_checks(variants: list[Variant]) -> str | None:
    """Why no variant could be kept although some reached the threshold."""
    failed = [v.label for v in variants if v.checked and v.checks is not None]
    if not failed:
        return None
    return "no variant passes the downstream checks (validate, test): " + ", ".join(
        f"{label} fails them" for label in failed
    )


def _human_reason(why: str) -> str:
    return f"{why}; a person must decide, and the human-in-the-loop step is not available yet"


def _variant_event(variant: Variant) -> dict[str, Any]:
    return {
        "label": variant.label,
        "tier": variant.tier,
        "model": variant.model,
        "score": variant.score,
        "cost_usd": variant.cost_usd,
        "estimated": variant.estimated,
        "problem": variant.problem,
        "checks": variant.checks,
    }


def run_chain(
    task: CodeTask,
    policy: EscalationPolicy,
    surroundings: Surroundings,
    *,
    local: Variant | None = None,
) -> ChainResult:
    """Escalate ``task`` by ``policy``. ``local`` is what the template agent made (a variant
    without files when it could make none); it is the `local` tier when that has no base_url."""
    return _Run(task, policy, surroundings, local).run()
