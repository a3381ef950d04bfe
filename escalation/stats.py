"""Across escalations: how each tier and model fares (the A/B view of competing variants)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .journal import EscalationRecord


@dataclasses.dataclass(frozen=True)
class TierModelStats:
    tier: str
    model: str
    variants: int
    wins: int
    mean_score: float
    mean_cost_usd: float
    estimated: int
    """Variants whose tokens (and cost) are estimated."""

    @property
    def win_rate(self) -> float:
        return self.wins / self.variants if self.variants else 0.0


def tier_model_stats(records: Iterable[EscalationRecord]) -> list[TierModelStats]:
    """Per (tier, model): variants, wins (variants kept), mean score and cost; sorted."""
    groups: dict[tuple[str, str], list[tuple[float, float, bool, bool]]] = {}
    for record in records:
        for variant in record.variants:
            won = record.outcome == "kept" and variant.label == record.winner
            key = (variant.tier, variant.model or "templates")
            groups.setdefault(key, []).append(
                (variant.score, variant.cost_usd, won, variant.estimated)
            )
    return [
        TierModelStats(
            tier=tier,
            model=model,
            variants=len(rows),
            wins=sum(won for _, _, won, _ in rows),
            mean_score=round(sum(score for score, _, _, _ in rows) / len(rows), 4),
            mean_cost_usd=round(sum(cost for _, cost, _, _ in rows) / len(rows), 8),
            estimated=sum(estimated for _, _, _, estimated in rows),
        )
        for (tier, model), rows in sorted(groups.items())
    ]
