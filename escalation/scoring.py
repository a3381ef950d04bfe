"""A variant's score from its signals, and the choice among competing variants. Pure.

Each signal becomes a value from 0 to 1: the tests' pass rate; 1 when the module parses and
imports; ``1 - min(1, type errors / 5)``; ``1 - min(1, lint findings / 10)``; and the share of
the other variants that pass exactly the same tests (CodeT's consensus). The score is the
weighted mean over the signals measured (a weight of 0 leaves a signal out); code that does not
parse scores 0 whatever the weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from .signals import Measured

TYPE_ERRORS_FOR_ZERO = 5
LINT_FINDINGS_FOR_ZERO = 10
TIE = 1e-9


@dataclasses.dataclass(frozen=True)
class Scored:
    """A variant's signal values (None: not measured) and score."""

    values: dict[str, float | None]
    score: float


def agreement(passed: Sequence[frozenset[str] | None]) -> list[float | None]:
    """For each variant, the share of the others that pass the same tests (None where a variant
    has no test result, or is alone).

    >>> a, b = frozenset({"t1"}), frozenset({"t2"})
    >>> agreement([a, a, b])
    [0.5, 0.5, 0.0]
    """
    known = [p for p in passed if p is not None]
    if len(known) < 2:
        return [None] * len(passed)
    return [
        None if mine is None else (sum(other == mine for other in known) - 1) / (len(known) - 1)
        for mine in passed
    ]


def signal_values(measured: Measured, agreed: float | None) -> dict[str, float | None]:
    """Each signal's value from 0 to 1, or None when it was not measured."""
    tests = None
    if measured.tests_passed is not None and measured.tests_total:
        tests = len(measured.tests_passed) / measured.tests_total
    types = None
    if measured.type_errors is not None:
        types = 1 - min(1.0, measured.type_errors / TYPE_ERRORS_FOR_ZERO)
    lint = None
    if measured.lint_findings is not None:
        lint = 1 - min(1.0, measured.lint_findings / LINT_FINDINGS_FOR_ZERO)
    return {
        "tests": tests,
        "parses": 1.0 if measured.parses and measured.imports else 0.0,
        "types": types,
        "lint": lint,
        "agreement": agreed,
    }


def score(values: Mapping[str, float | None], weights: Mapping[str, float]) -> float:
    """The weighted mean of the measured values; 0 when the code does not parse.

    >>> score({"tests": 1.0, "parses": 1.0, "types": None}, {"tests": 3, "parses": 1, "types": 5})
    1.0
    >>> score({"tests": 0.5, "parses": 0.0}, {"tests": 1, "parses": 1})
    0.25
    """
    counted = {
        name: (value, weights.get(name, 0.0))
        for name, value in values.items()
        if value is not None and weights.get(name, 0.0) > 0
    }
    total = sum(weight for _, weight in counted.values())
    if total == 0:
        # Nothing weighted was measured: whether the module parses and imports is all we know.
        return float(values.get("parses") or 0.0)
    return round(sum(value * weight for value, weight in counted.values()) / total, 6)


def score_all(measured: Sequence[Measured | None], weights: Mapping[str, float]) -> list[Scored]:
    """The scores of competing variants (None: a variant without code, which scores 0)."""
    agreed = agreement([m.tests_passed if m is not None else None for m in measured])
    scored = []
    for m, share in zip(measured, agreed, strict=True):
        if m is None or not m.parses:
            values: dict[str, float | None] = dict.fromkeys(weights, None)
            values["parses"] = 0.0
            scored.append(Scored(values, 0.0))
            continue
        values = signal_values(m, share)
        scored.append(Scored(values, score(values, weights)))
    return scored


@dataclasses.dataclass(frozen=True)
class Contender:
    """What the choice among variants looks at."""

    score: float
    passed: frozenset[str] | None
    cost_usd: float


def best(contenders: Sequence[Contender]) -> int | None:
    """The index of the variant to keep: the highest score; on a tie, the one whose passed tests
    the most variants share (consensus), then the cheaper, then the first.

    >>> same = frozenset({"t"})
    >>> best([Contender(0.8, frozenset(), 0.0), Contender(0.8, same, 0.2),
    ...       Contender(0.8, same, 0.1)])
    2
    """
    if not contenders:
        return None
    top = max(c.score for c in contenders)
    tied = [i for i, c in enumerate(contenders) if top - c.score <= TIE]

    def consensus(index: int) -> int:
        mine = contenders[index].passed
        return 0 if mine is None else sum(c.passed == mine for c in contenders)

    return min(tied, key=lambda i: (-consensus(i), contenders[i].cost_usd, i))
