"""The node-exporter textfile: a registry written atomically, so the collector never reads half
a file (prometheus-client writes a temporary file and renames it)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile


def write_textfile(path: Path, registry: CollectorRegistry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
