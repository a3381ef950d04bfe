"""What the redaction gateway looks for: personal data and secrets, found by pattern.

Offline and deterministic (no NER model, no network): e-mail addresses, IPv4 and IPv6
addresses, phone numbers, API keys (``sk-``, ``AKIA``, ``gh*_``, ``github_pat_``, ``xox*-``),
private-key blocks, the values of ``.env``-style lines whose name says secret, and high-entropy
strings. Each finding is a span of the text; overlapping findings keep the one found first, in
the order of :data:`DETECTORS` (a key inside a ``.env`` line is one secret, not two).
"""

from __future__ import annotations

import bisect
import dataclasses
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

from plan2flow.observability.secrets import API_KEYS, ENV_LINE, PRIVATE_KEY

SECRET = "SECRET"
EMAIL = "EMAIL"
IP_ADDRESS = "IP_ADDRESS"
PHONE_NUMBER = "PHONE_NUMBER"


@dataclasses.dataclass(frozen=True)
class Finding:
    """A span of text to replace; ``env_name`` names the variable a secret is read from."""

    start: int
    end: int
    entity: str
    env_name: str | None = None


Detector = Callable[[str], Iterator[Finding]]

# One definition of a secret's shape, shared with the log redaction (plan2flow.observability).
_PRIVATE_KEY = PRIVATE_KEY
_ENV_LINE = ENV_LINE
_KEYS = API_KEYS
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){1,4}(?![\w])"
    r"|(?<![\w+])\+\d{7,15}(?![\w])"
)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/=_-]{20,}(?![A-Za-z0-9+/=_-])")


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``.

    >>> round(shannon_entropy("aaaa"), 2), round(shannon_entropy("abcd"), 2)
    (0.0, 2.0)
    """
    counts = Counter(text)
    return sum(n / len(text) * math.log2(len(text) / n) for n in counts.values())


def _private_keys(text: str) -> Iterator[Finding]:
    for match in _PRIVATE_KEY.finditer(text):
        yield Finding(match.start(), match.end(), SECRET)


def _env_lines(text: str) -> Iterator[Finding]:
    for match in _ENV_LINE.finditer(text):
        yield Finding(match.start(3), match.end(3), SECRET, env_name=match.group(1))


def _keys(text: str) -> Iterator[Finding]:
    for match in _KEYS.finditer(text):
        yield Finding(match.start(), match.end(), SECRET)


def _emails(text: str) -> Iterator[Finding]:
    for match in _EMAIL.finditer(text):
        yield Finding(match.start(), match.end(), EMAIL)


def _ipv4(text: str) -> Iterator[Finding]:
    for match in _IPV4.finditer(text):
        if all(int(part) <= 255 for part in match.group().split(".")):
            yield Finding(match.start(), match.end(), IP_ADDRESS)


def _ipv6(text: str) -> Iterator[Finding]:
    for match in _IPV6.finditer(text):
        value = match.group()
        # Three groups at least: `a[::2]` and `12:30` are code and times, not addresses.
        if sum(1 for group in value.split(":") if group) < 3:
            continue
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            continue
        yield Finding(match.start(), match.end(), IP_ADDRESS)


def _phones(text: str) -> Iterator[Finding]:
    for match in _PHONE.finditer(text):
        value = match.group()
        digits = sum(char.isdigit() for char in value)
        separators = sum(char in " .-" for char in value)
        if not 7 <= digits <= 15 or _ISO_DATE.match(value):
            continue
        if value.startswith("+") or "(" in value or separators >= 2:
            yield Finding(match.start(), match.end(), PHONE_NUMBER)


def is_high_entropy(value: str) -> bool:
    """A random-looking token of 20 characters or more: letters and digits mixed, many bits per
    character (names of code, even long ones, have no digits or repeat their letters).

    >>> is_high_entropy("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    True
    >>> is_high_entropy("test_generated_module_helper_2")
    False
    """
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    if re.fullmatch(r"[0-9a-fA-F]+", value):
        return len(value) >= 32 and shannon_entropy(value) >= 3.0
    return shannon_entropy(value) >= 4.0


def _high_entropy(text: str) -> Iterator[Finding]:
    for match in _CANDIDATE.finditer(text):
        if is_high_entropy(match.group()):
            yield Finding(match.start(), match.end(), SECRET)


def _pattern(name: str, regex: re.Pattern[str]) -> Detector:
    def detect(text: str) -> Iterator[Finding]:
        for match in regex.finditer(text):
            if match.end() > match.start():
                yield Finding(match.start(), match.end(), name)

    return detect


SECRET_DETECTORS: tuple[Detector, ...] = (_private_keys, _env_lines, _keys)
ENTITY_DETECTORS: dict[str, Detector] = {
    "email": _emails,
    "ip_address": _ipv4,
    "ip_address_v6": _ipv6,
    "phone_number": _phones,
}


def detectors(entities: Iterable[str], patterns: Sequence[tuple[str, str]]) -> list[Detector]:
    """The detectors of a policy, in priority order: secrets first (always), then the allowed
    entities, the project's patterns, and high-entropy strings last."""
    chosen = list(SECRET_DETECTORS)
    wanted = set(entities)
    for name, detector in ENTITY_DETECTORS.items():
        if name.removesuffix("_v6") in wanted:
            chosen.append(detector)
    chosen.extend(_pattern(name, re.compile(regex)) for name, regex in patterns)
    chosen.append(_high_entropy)
    return chosen


def find_all(text: str, chosen: Sequence[Detector]) -> list[Finding]:
    """Every finding in ``text``, without overlaps, in text order. Spans taken are kept sorted,
    so each new one is checked against its two neighbours only."""
    starts: list[int] = []
    taken: list[Finding] = []
    for detector in chosen:
        for finding in detector(text):
            at = bisect.bisect_left(starts, finding.start)
            before = taken[at - 1] if at > 0 else None
            after = taken[at] if at < len(taken) else None
            if (before is None or before.end <= finding.start) and (
                after is None or finding.end <= after.start
            ):
                starts.insert(at, finding.start)
                taken.insert(at, finding)
    return taken
