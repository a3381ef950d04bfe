"""Python names for the generated flow module.

Rules, applied in order:

1. Every character that cannot appear in an identifier becomes ``_``; runs of ``_`` collapse and
   ``_`` is stripped from both ends (``models.test[python=3.12]`` → ``models_test_python_3_12``).
2. A name that is empty or starts with a digit gets a ``t_`` prefix (``2fast`` → ``t_2fast``).
3. Python keywords, soft keywords, builtins and the module's own names (``flow``, ``runtime``,
   ``run``, ...) get a ``_`` suffix (``class`` → ``class_``).
4. Names are made unique in the order given by appending ``_2``, ``_3``, ...; the order is the
   graph's topological order, so the result never depends on the YAML.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Callable, Iterable

RESERVED = frozenset(
    {
        "annotations",
        "flow",
        "GRAPH_FILE",
        "GRAPH_HASH",
        "main",
        "run",
        "runtime",
        "ThreadPoolTaskRunner",
        *keyword.kwlist,
        *keyword.softkwlist,
        *dir(builtins),
    }
)

_INVALID = re.compile(r"[^0-9A-Za-z_]+")
_UNDERSCORES = re.compile(r"_+")


def to_identifier(text: str) -> str:
    """A readable Python identifier for `text` (rules 1 to 3).

    >>> to_identifier("models.test[python=3.12]"), to_identifier("2fast"), to_identifier("class")
    ('models_test_python_3_12', 't_2fast', 'class_')
    """
    name = _UNDERSCORES.sub("_", _INVALID.sub("_", text)).strip("_")
    if not name or name[0].isdigit():
        name = f"t_{name}"
    if name in RESERVED:
        name = f"{name}_"
    return name


def unique_identifiers(
    texts: Iterable[str],
    taken: Iterable[str] = (),
    *,
    base_name: Callable[[str], str] = to_identifier,
) -> dict[str, str]:
    """Map each text to a distinct identifier (rule 4), avoiding the names in `taken`; each
    starts from `base_name` of its text (rules 1 to 3 by default).

    >>> unique_identifiers(["a-b", "a.b", "a_b"])
    {'a-b': 'a_b', 'a.b': 'a_b_2', 'a_b': 'a_b_3'}
    """
    used = set(taken)
    names: dict[str, str] = {}
    for text in texts:
        base = base_name(text)
        name, counter = base, 1
        while name in used:
            counter += 1
            name = f"{base}_{counter}"
        used.add(name)
        names[text] = name
    return names
