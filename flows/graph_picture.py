"""A picture of a TaskGraph that the Prefect UI shows: Graphviz's SVG as a markdown image.

The Prefect UI's classic pages do not render Mermaid (PrefectHQ/prefect#20764; the ``/v2`` UI
of 3.9 does). Tried in headless Chromium on both UIs: a markdown image whose source is a
``data:`` URI (SVG or PNG) is drawn by both, and so is an HTML ``<img>``; inline ``<svg>`` is
stripped; tables and ``<details>`` render. An SVG in an image runs no script, so task ids in
its labels are only text.

Drawing needs Graphviz's ``dot`` where the flow runs (``make system-deps`` installs it); without
it, or for a graph too large to draw quickly, the artifact says so and keeps its tables.
"""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from plan2flow.compiler import GraphMark, graph_dot

LOGGER = logging.getLogger("plan2flow.runtime")
MAX_TASKS = 300
"""Larger graphs are not drawn: the picture would be unreadable and slow to lay out."""
MAX_SVG_BYTES = 1_500_000
"""An artifact is stored in the server's database: a larger picture is left out."""
DOT_SECONDS = 20.0


def render_svg(dot_text: str) -> tuple[bytes | None, str]:
    """Graphviz's SVG of `dot_text`, or ``None`` and why not (no ``dot``, it failed, too big).
    The text goes to ``dot``'s standard input: no shell, no file."""
    program = shutil.which("dot")
    if program is None:
        return None, "Graphviz's `dot` is not installed where the flow runs"
    try:
        done = subprocess.run(
            [program, "-Tsvg"],
            input=dot_text.encode("utf-8"),
            capture_output=True,
            timeout=DOT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"`dot` did not draw it ({type(error).__name__})"
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        return None, f"`dot` failed: {reason[0] if reason else done.returncode}"
    if len(done.stdout) > MAX_SVG_BYTES:
        return None, f"the picture is {len(done.stdout):,} bytes, over {MAX_SVG_BYTES:,}"
    return done.stdout, ""


def image_markdown(alt: str, svg: bytes) -> str:
    """A markdown image of `svg` as a ``data:`` URI, the form the Prefect UI draws.

    >>> image_markdown("graph [x]", b"<svg/>")
    '![graph x](data:image/svg+xml;base64,PHN2Zy8+)'
    """
    text = "".join(c for c in alt if c not in "[]()\n")
    return f"![{text}](data:image/svg+xml;base64,{base64.b64encode(svg).decode('ascii')})"


def graph_picture(
    document: Mapping[str, Any], alt: str, marks: Mapping[str, GraphMark] | None = None
) -> str:
    """The graph drawn as a markdown image, or a line saying why it is not."""
    count = len(document.get("tasks") or ())
    if count > MAX_TASKS:
        return f"_The graph has {count} tasks, over {MAX_TASKS}: it is not drawn here._"
    try:
        text = graph_dot(document, marks)
    except (KeyError, TypeError, ValueError) as error:
        LOGGER.warning("plan2flow: the graph of %s was not drawn: %s", alt, error)
        return "_The graph could not be drawn._"
    svg, reason = render_svg(text)
    if svg is None:
        return f"_The graph is not drawn: {reason}._"
    return image_markdown(alt, svg)
