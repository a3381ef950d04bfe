"""What an escalation may spend on remote tiers, checked before each call.

A call's largest cost is known before it is made: the prompt's tokens plus ``max_tokens`` at the
tier's price. A call is made only when that much is left, so the budget holds whatever the
model answers; after the call, what it really cost (or an estimate, marked so) is charged.
"""

from __future__ import annotations

import dataclasses

from .errors import BudgetExceeded


def cost_usd(tokens: int, price_per_1k_tokens: float) -> float:
    """What ``tokens`` cost at a price per 1,000 tokens, in US dollars.

    >>> cost_usd(1500, 0.002)
    0.003
    """
    return round(tokens * price_per_1k_tokens / 1000, 10)


@dataclasses.dataclass
class Budget:
    limit_usd: float
    spent_usd: float = 0.0
    calls: int = 0

    def check(self, largest_cost_usd: float) -> None:
        """Raise :class:`BudgetExceeded` unless a call costing up to ``largest_cost_usd`` fits."""
        if largest_cost_usd > 0 and self.spent_usd + largest_cost_usd > self.limit_usd + 1e-12:
            raise BudgetExceeded(
                f"the next call could cost {largest_cost_usd:.6f} USD; "
                f"{self.limit_usd - self.spent_usd:.6f} of {self.limit_usd:g} USD are left"
            )

    def charge(self, amount_usd: float) -> None:
        self.spent_usd = round(self.spent_usd + amount_usd, 10)
        self.calls += 1
