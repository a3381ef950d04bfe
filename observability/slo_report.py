"""Asking a Prometheus how a plan's objectives stand: one instant query per objective."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from .errors import SloError
from .slo import Compliance, Objective, compliance


def measure(objectives: Sequence[Objective], prometheus: str) -> list[Compliance]:
    """Each objective's compliance over its window, from Prometheus's HTTP API."""
    found = []
    with httpx.Client(base_url=prometheus.rstrip("/"), timeout=30) as client:
        for slo in objectives:
            query = slo.bad_ratio(slo.window)
            try:
                answer = client.get("/api/v1/query", params={"query": query})
                body = answer.json()
            except (httpx.HTTPError, ValueError) as error:
                raise SloError(f"cannot query Prometheus at {prometheus}: {error}") from None
            if body.get("status") != "success":
                raise SloError(f"Prometheus refused the query: {body.get('error', answer.text)}")
            found.append(compliance(slo, body["data"]["result"]))
    return found
