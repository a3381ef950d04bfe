"""The bounds on what a plan may ask of the compiler."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what a plan may ask of the compiler, each checked before the work it bounds.

    The figures behind the defaults are in docs/performance.md (``bench/validate_size.py``).
    """

    max_bytes: int = 4 * 1024 * 1024
    # Written tasks plus components, counted before schema validation.
    max_tasks: int = 50_000
    # Tasks after components and matrices are expanded, counted before anything is expanded.
    max_expanded_tasks: int = 50_000
    # Dependencies and inputs after expansion (a fan-in on a matrix task counts each expansion).
    max_edges: int = 500_000
    # Text that matrices copy into every expansion (params, descriptions).
    max_expanded_bytes: int = 64 * 1024 * 1024
    # Diagnostics reported per plan, the first by position; a P2F010 warning counts the rest.
    max_diagnostics: int = 1_000
    max_depth: int = 64
    # Aliases may expand the document to this many times its written size (and at least to
    # `min_expanded_nodes`), which lets `<<: *defaults` on every task through and stops bombs.
    alias_expansion_factor: int = 10
    min_expanded_nodes: int = 100_000


DEFAULT_LIMITS = Limits()
