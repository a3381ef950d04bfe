"""``python -m plan2flow.agents.table``: the compiler's table of agent block schema checksums.

The compiler never imports Prefect, so it cannot ask the Block classes; this prints the table it
keeps instead (``AGENT_SCHEMA_CHECKSUMS`` in ``compiler/decompose/agents.py``).
"""

from __future__ import annotations

from . import AGENTS


def checksums() -> dict[str, str]:
    """Block type slug → schema checksum, from the Block classes themselves."""
    return {slug: str(cls._calculate_schema_checksum()) for slug, cls in sorted(AGENTS.items())}


def render_table() -> str:
    lines = ["AGENT_SCHEMA_CHECKSUMS: dict[str, str] = {"]
    lines += [f'    "{slug}": "{checksum}",' for slug, checksum in checksums().items()]
    return "\n".join([*lines, "}"]) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render_table(), end="")
