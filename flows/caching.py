"""The resume cache: a plan task's key is the canonical digest of its Merkle hash, the digests
of everything it consumes and the parameter values it uses, so a re-run skips what succeeded."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from prefect.cache_policies import CachePolicy

from plan2flow.compiler import canonical_json, digest

from .artifacts import TaskOutput
from .graph import GraphTask
from .workspace import RunPlace


def cache_key(
    plan: str, task_id: str, task_hash: str, upstream: Mapping[str, Any], values: Mapping[str, Any]
) -> str | None:
    """The digest of the compiler's canonical JSON of the task's Merkle hash, the digests of
    every upstream artifact and the parameter values it uses; ``None`` (no caching) when an
    upstream did not complete or a value has no JSON form (NaN, infinity)."""
    digests: dict[str, dict[str, str]] = {}
    for upstream_id, output in sorted(upstream.items()):
        if not isinstance(output, TaskOutput):
            return None
        digests[upstream_id] = {name: a.digest for name, a in sorted(output.artifacts.items())}
    material = {
        "plan": plan,
        "task": task_id,
        "hash": task_hash,
        "upstream": digests,
        "values": dict(values),
    }
    try:
        text = canonical_json(material)
    except (TypeError, ValueError):
        return None
    return "plan2flow-" + digest(text).partition(":")[2]


@dataclasses.dataclass
class PlanTaskCache(CachePolicy):
    """Prefect cache policy for plan tasks (see :func:`cache_key`)."""

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        spec: GraphTask = inputs["spec"]
        place: RunPlace = inputs["run"]
        return cache_key(place.plan, spec.id, spec.hash, inputs["upstream"], inputs["values"])
