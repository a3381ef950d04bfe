"""A callable for benchmark plans: ``type: python`` tasks call ``bench_sleep:sleep``.

``time.sleep`` takes no keyword argument (``time.sleep(secs=1)`` raises TypeError), and plan2flow
calls a python task's callable with keyword arguments only, so plans cannot call it directly.
``bench/parallel.py`` puts ``bench/`` on ``sys.path`` so that the flow can import this module.
"""

from __future__ import annotations

import time


def sleep(seconds: float) -> None:
    """Sleep `seconds` (releases the GIL, like a task waiting on I/O or a subprocess)."""
    time.sleep(seconds)
