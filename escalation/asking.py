"""Asking one model tier for competing variants of a task.

Each variant is one call at its own temperature, spread from 0.2 to 0.8, so that the variants
differ. A call that fails makes a variant without code; a wait longer than the policy allows or
a budget spent ends the tier; a token that does not come back intact ends the chain at the
human tier (:attr:`TierAnswers.needs_human`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from .budget import Budget
from .errors import AnswerInvalid, BudgetExceeded, ModelCallFailed, RedactionFailed
from .gateway import Gateway
from .outbound import Outbound
from .prompt import answer_schema, example_texts, parse_bodies, with_bodies
from .redaction import restore
from .remote import ChatClient
from .variants import CodeTask, Variant

_TOKEN = re.compile(r"«[A-Z][A-Z0-9_]*?_\d+»")


def temperatures(count: int) -> list[float]:
    """One temperature per variant, spread from 0.2 to 0.8.

    >>> temperatures(1), temperatures(3)
    ([0.2], [0.2, 0.5, 0.8])
    """
    if count == 1:
        return [0.2]
    return [round(0.2 + 0.6 * i / (count - 1), 3) for i in range(count)]


def required_tokens(
    task: CodeTask, outbound: Outbound, gateway: Gateway | None, names: Sequence[str]
) -> dict[str, set[str]]:
    """Per function, the tokens its body must return: those of an expected result that its call
    does not pass in (``contact() == '«EMAIL_1»'`` needs the address in the body)."""
    if gateway is None:
        return {name: set() for name in names}
    sent = "".join(text for _, text in outbound.messages)
    found: dict[str, set[str]] = {}
    for name, examples in example_texts(task.spec).items():
        if name not in names:
            continue
        needed: set[str] = set()
        for call, returns in examples:
            given = set(_TOKEN.findall(gateway.preview(outbound, call)))
            expected = set(_TOKEN.findall(gateway.preview(outbound, returns)))
            needed |= {token for token in expected - given if token in sent}
        found[name] = needed
    return found


@dataclasses.dataclass
class TierAnswers:
    variants: list[Variant]
    stopped: str | None = None
    """Why the tier ended before asking for every variant."""
    needs_human: str | None = None
    """Why the chain must go to a person (a redaction token did not come back)."""


def ask_tier(
    task: CodeTask,
    *,
    tier_index: int,
    kind: str,
    client: ChatClient,
    outbound: Outbound,
    gateway: Gateway | None,
    count: int,
    budget: Budget,
) -> TierAnswers:
    names = [f["name"] for f in task.spec.get("functions", []) if not f.get("body")]
    schema = answer_schema(names)
    required = required_tokens(task, outbound, gateway, names)
    answers = TierAnswers([])
    for number, temperature in enumerate(temperatures(count), start=1):
        variant = Variant(
            label=f"{tier_index}-{kind}-{number}",
            tier=kind,
            model=client.model,
            temperature=temperature,
        )
        answers.variants.append(variant)
        try:
            completion = client.complete(
                outbound, temperature=temperature, budget=budget, schema=schema
            )
        except BudgetExceeded as error:
            answers.variants.pop()
            answers.stopped = f"budget: {error}"
            break
        except ModelCallFailed as error:
            variant.problem, variant.attempts, variant.delays = (
                str(error),
                error.attempts,
                error.delays,
            )
            if error.escalate:
                answers.stopped = str(error)
                break
            continue
        variant.model = completion.model
        variant.prompt_tokens, variant.completion_tokens = (
            completion.prompt_tokens,
            completion.completion_tokens,
        )
        variant.estimated, variant.cost_usd = completion.estimated, completion.cost_usd
        variant.attempts, variant.delays = completion.attempts, completion.delays
        _read_answer(task, variant, completion.content, names, outbound, required, answers)
    return answers


def _read_answer(
    task: CodeTask,
    variant: Variant,
    content: str,
    names: Sequence[str],
    outbound: Outbound,
    required: Mapping[str, set[str]],
    answers: TierAnswers,
) -> None:
    try:
        bodies = parse_bodies(content, names)
        restored = {
            name: restore(body, outbound.vault, require=required.get(name, ()))
            for name, body in bodies.items()
        }
        variant.files = task.render(with_bodies(task.spec, restored))
    except AnswerInvalid as error:
        variant.problem = str(error)
    except RedactionFailed as error:
        variant.problem = f"redaction: {error}"
        answers.needs_human = f"variant {variant.label}: {error}"
    except ValueError as error:
        variant.problem = f"cannot render the module: {error}"
