"""'Did you mean' hints for misspelled ids, fields and types."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

SUGGESTION_BUDGET = 200_000
"""Candidate comparisons one :class:`Suggester` may make, for all its hints together.

difflib compares a word with every candidate in Python: 5,000 misspelled references to a plan of
5,000 tasks took 424 s. Within the budget (about half a second) every hint is computed; past it,
diagnostics come without a hint, so the cost of hints stays bounded whatever the plan."""


class Suggester:
    """Hints for words misspelled against one pool of names, the pool sorted once.

    >>> suggest = Suggester(["extract", "load"])
    >>> suggest("extarct"), suggest("zzz")
    ("did you mean 'extract'?", None)
    """

    def __init__(self, candidates: Iterable[str], budget: int = SUGGESTION_BUDGET) -> None:
        self._pool = sorted(set(candidates))
        self._lowered: dict[str, str] | None = None
        self._budget = budget
        self._found: dict[str, str | None] = {}

    def __call__(self, word: str) -> str | None:
        if word in self._found:
            return self._found[word]
        if len(self._pool) > self._budget:
            return None
        self._budget -= len(self._pool)
        matches = difflib.get_close_matches(word, self._pool, n=1, cutoff=0.6)
        if not matches:
            if self._lowered is None:
                self._lowered = {c.lower(): c for c in self._pool}
            if word.lower() in self._lowered:
                matches = [self._lowered[word.lower()]]
        hint = f"did you mean '{matches[0]}'?" if matches else None
        self._found[word] = hint
        return hint


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, if one is close enough (one word, a small pool).

    >>> did_you_mean("extarct", ["extract", "load"])
    "did you mean 'extract'?"
    >>> did_you_mean("LOAD", ["extract", "load"])
    "did you mean 'load'?"
    """
    return Suggester(candidates)(word)
