"""The chain: local agent → remote models with competing variants → a person.

Tiers run in the policy's order. After each, every variant so far is scored (the variants of all
tiers compete: agreement counts across them), and the best is kept once it reaches the
threshold. A tier that cannot run (no API key, a host not allowed, the budget spent, a server
asking for a longer wait than allowed) hands over to the next one; a redaction that fails, or a
token that does not come back, goes straight to the human tier: nothing is sent, nothing kept.
At the human tier a person is asked through the desk of the flow run (:mod:`.human`): accept
the best variant, edit its code, reject, or retry the model tiers, at most
:data:`~.human.ROUNDS` answers; without a desk (outside a flow run) the chain ends as a
failure that names the tier and why.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from plan2flow.compiler.spec.escalation import EscalationPolicy, HumanTier, Tier
from plan2flow.memory.tenant_hosts import TenantHosts

from .asking import TierAnswers, ask_tier
from .budget import Budget
from .errors import HostDenied, ModelCallFailed, RedactionFailed
from .gateway import Gateway, local_outbound
from .human import ROUNDS, HumanAnswer, HumanDesk, HumanQuestion, edit_problem, summarize
from .prompt import SYSTEM, messages, with_bodies
from .remote import ChatClient, Sleep
from .scoring import Contender, best, score_all
from .signals import measure
from .variants import CodeTask, Variant

OnEvent = Callable[[str, dict[str, Any]], None]


@dataclasses.dataclass(frozen=True)
class HumanStep:
    """One answer at the human tier (``timed_out`` when none came) and what it led to."""

    round: int
    decision: str
    respondent: str | None
    comment: str | None
    outcome: str
    """``kept``, ``rejected``, ``retried``, ``refused`` (asked again) or ``timed_out``."""
    kept: str | None = None
    note: str | None = None


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
    human: list[HumanStep] = dataclasses.field(default_factory=list)
    """The answers at the human tier, in order."""

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
    desk: HumanDesk | None = None
    """Who asks a person at the human tier; None outside a flow run."""
    tenant_hosts: TenantHosts | None = None
    """The tenant's outbound host list, when it has one: a remote tier's host must be in it
    too (on top of the policy's ``allowed_hosts``)."""


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
        self.human: list[HumanStep] = []
        self.budget = Budget(policy.budget_usd)
        self.gateway = Gateway(policy.redact, policy.allowed_hosts, surroundings.tenant_hosts)
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
            human=list(self.human),
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
        human = next((t.human for t in policy.tiers if t.human is not None), None)
        machines = [(i, t) for i, t in enumerate(policy.tiers) if t.human is None]
        ended, why, needs_human = self._machines(machines, retry=0)
        if ended is not None:
            return ended
        if human is not None:
            return self._human(human, machines, why)
        if needs_human is not None:
            return self.result("failed", needs_human, f"{why}; a person must decide", None)
        return self.result("failed", policy.tiers[-1].kind, why + "; no tier is left", None)

    def _machines(
        self, tiers: list[tuple[int, Tier]], *, retry: int
    ) -> tuple[ChainResult | None, str, str | None]:
        """Run the model tiers in order: the result once a variant is kept, else why not (and
        the tier whose answer needs a person, if one does). A retry asks the model tiers again
        (the template's variant would be the same: it is not made again)."""
        policy = self.policy
        why = "no tier ran"
        for index, tier in tiers:
            if retry and tier.local is not None and tier.local.base_url is None:
                continue
            answers = self._tier(index, tier)
            for variant in answers.variants:
                if retry:
                    variant.label += f"-r{retry}"
            self.variants.extend(answers.variants)
            where = self.around.workdir / "variants"
            _score(self.task, policy, self.variants, where)
            _check(self.task, self.variants, policy.threshold, where)
            for variant in answers.variants:
                self.around.on_event("variant_scored", _variant_event(variant))
            if answers.needs_human is not None:
                return None, answers.needs_human, tier.kind
            gated = self.task.check is not None
            leader = _leader(self.variants, gated)
            if leader is not None and leader.score >= policy.threshold:
                reason = f"{leader.label} scores {leader.score:.3f} >= threshold {policy.threshold}"
                if gated:
                    reason += " and passes the downstream checks"
                return self.result("kept", tier.kind, reason, leader), reason, None
            failing = _failed_checks(self.variants) if gated and leader is None else None
            if failing is not None:
                why = failing + (f" ({answers.stopped})" if answers.stopped else "")
            else:
                best_any = _leader(self.variants, False) if leader is None else leader
                why = _shortfall(tier.kind, best_any, policy.threshold, answers.stopped)
        return None, why, None

    def _human(self, tier: HumanTier, machines: list[tuple[int, Tier]], why: str) -> ChainResult:
        """Ask a person, at most :data:`ROUNDS` times: accept, edit, reject or retry."""
        desk = self.around.desk
        if desk is None:
            reason = (
                f"{why}; a person must decide, and no one can be asked outside a Prefect flow run "
                "(run the plan as a flow to get the human tier's form)"
            )
            return self.result("failed", "human", reason, None)
        note: str | None = None
        for round_ in range(1, ROUNDS + 1):
            best_one = _best_with_code(self.variants)
            question = self._question(tier, why, round_, note, best_one)
            self.around.on_event(
                "human_requested",
                {"round": round_, "reason": why, "best": question.best, "mode": tier.mode},
            )
            answer = desk.ask(question)
            if answer is None:
                self._answered(round_, None, "timed_out", None)
                reason = f"{why}; no one answered within {tier.timeout_s:g} s (the human tier)"
                return self.result("failed", "human", reason, None)
            who = answer.respondent
            said = f" ({answer.comment})" if answer.comment else ""
            if answer.decision == "reject":
                self._answered(round_, answer, "rejected", None)
                reason = f"{why}; rejected at the human tier by {who!r}{said}"
                return self.result("failed", "human", reason, None)
            if answer.decision == "accept":
                if best_one is not None:
                    self._answered(round_, answer, "kept", best_one.label)
                    reason = (
                        f"{best_one.label} (score {best_one.score:.3f}) accepted at the human "
                        f"tier by {who!r}{said}"
                    )
                    return self.result("kept", "human", reason, best_one)
                note = f"{who!r} answered accept, but no variant has code to keep"
                self._answered(round_, answer, "refused", None, note)
                continue
            if answer.decision == "edit":
                edited, note = self._edit(answer, round_)
                if edited is not None:
                    self._answered(round_, answer, "kept", edited.label)
                    reason = (
                        f"the code of {who!r} ({edited.label}, score {edited.score:.3f}) kept at "
                        f"the human tier{said}"
                    )
                    return self.result("kept", "human", reason, edited)
                self._answered(round_, answer, "refused", None, note)
                continue
            self._answered(round_, answer, "retried", None)
            ended, why, _ = self._machines(machines, retry=round_)
            if ended is not None:
                return ended
            note = f"{who!r} asked to retry; the chain ran again and kept nothing"
        reason = f"{why}; no decision ended the escalation after {ROUNDS} answers (the human tier)"
        return self.result("failed", "human", reason, None)

    def _question(
        self, tier: HumanTier, why: str, round_: int, note: str | None, best_one: Variant | None
    ) -> HumanQuestion:
        code = None
        if best_one is not None and best_one.files is not None:
            code = self.gateway.shown(best_one.files.get(f"{self.task.module}.py", ""))
        return HumanQuestion(
            task_id=self.task.task_id,
            plan=self.task.plan,
            module=self.task.module,
            reason=why,
            threshold=self.policy.threshold,
            variants=tuple(summarize(v) for v in self.variants),
            best=None if best_one is None else best_one.label,
            best_code=code if code is not None else None,
            round=round_,
            note=note,
            timeout_s=tier.timeout_s,
            mode=tier.mode,
            respondents=tuple(tier.respondents),
        )

    def _edit(self, answer: HumanAnswer, round_: int) -> tuple[Variant | None, str | None]:
        """The person's code as a variant, scored and checked like the others; None and why
        when it cannot be used (it does not parse, or the tests cannot be rendered)."""
        problem = edit_problem(answer.code)
        if problem is not None:
            return None, f"the edit of {answer.respondent!r} is refused: {problem}"
        assert answer.code is not None  # edit_problem refuses no code
        tests = _tests_of(self.task, self.variants)
        if tests is None:
            return None, f"the edit of {answer.respondent!r} is refused: no tests to score it"
        module = f"{self.task.module}.py"
        files = {module: answer.code, **tests}
        variant = Variant(f"h{round_}-human", "human", model=None, files=files)
        self.variants.append(variant)
        where = self.around.workdir / "variants"
        _score(self.task, self.policy, self.variants, where)
        _check(self.task, [variant], 0.0, where)
        self.around.on_event("variant_scored", _variant_event(variant))
        return variant, None

    def _answered(
        self,
        round_: int,
        answer: HumanAnswer | None,
        outcome: str,
        kept: str | None,
        note: str | None = None,
    ) -> None:
        step = HumanStep(
            round=round_,
            decision="timed_out" if answer is None else answer.decision,
            respondent=None if answer is None else answer.respondent,
            comment=None if answer is None else answer.comment,
            outcome=outcome,
            kept=kept,
            note=note,
        )
        self.human.append(step)
        self.around.on_event("human_answered", dataclasses.asdict(step))

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


def _best_with_code(variants: list[Variant]) -> Variant | None:
    """The best variant that has code: what ``accept`` keeps."""
    with_code = [v for v in variants if v.files is not None]
    index = best([Contender(v.score, v.passed, v.cost_usd) for v in with_code])
    return None if index is None else with_code[index]


def _tests_of(task: CodeTask, variants: list[Variant]) -> dict[str, str] | None:
    """The tests rendered from the spec's examples (a person's edit is scored by them): those
    of a variant, else rendered with placeholder bodies; None when the spec cannot be."""
    name = f"test_{task.module}.py"
    for variant in variants:
        if variant.files is not None and name in variant.files:
            return {name: variant.files[name]}
    placeholders = {f["name"]: "raise NotImplementedError" for f in task.spec.get("functions", [])}
    try:
        files = task.render(with_bodies(task.spec, placeholders))
    except (ValueError, KeyError):
        return None
    return {name: files[name]} if name in files else None


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
