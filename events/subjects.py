"""Subjects and patterns: ``plan2flow.<tenant>.<plan>.<kind>.<event>``.

Tenants are DNS labels (RFC 1123: lowercase letters, digits and ``-``, at most 63 characters,
starting and ending with a letter or digit), so no token of a subject contains a dot. A plan's
name becomes a label through :func:`label_for` (itself when it already is one). Task ids never
go into subjects: they are in the event's ``taskid`` attribute and its payload.

Patterns follow NATS: ``*`` matches exactly one token, ``>`` matches one or more tokens and may
only be the last token. :func:`matches` is the one implementation that every backend uses.
"""

from __future__ import annotations

import hashlib
import re

from plan2flow.events.errors import InvalidSubject

ROOT = "plan2flow"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def is_label(value: str) -> bool:
    """Whether ``value`` is a DNS label.

    >>> is_label("acme"), is_label("Acme"), is_label("a.b"), is_label("-a")
    (True, False, False, False)
    """
    return bool(_LABEL.match(value))


def check_label(value: str, what: str) -> str:
    """``value`` when it is a DNS label, else :class:`InvalidSubject` naming ``what``."""
    if not is_label(value):
        raise InvalidSubject(
            f"{what} {value!r} is not a DNS label (lowercase letters, digits and '-', "
            "1 to 63 characters, starting and ending with a letter or digit)"
        )
    return value


def label_for(name: str) -> str:
    """The subject token of a plan name: the name itself when it is a DNS label; otherwise the
    name lowercased, with every other character replaced by ``-``, and an 8-digit digest of the
    original name appended, so two names never share a token.

    >>> label_for("hello"), label_for("My_Plan")
    ('hello', 'my-plan-80a53897')
    """
    if is_label(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    base = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[: 63 - 9].strip("-")
    return f"{base}-{digest}" if base else f"p-{digest}"


def subject_for(tenant: str, plan: str, event_type: str) -> str:
    """The subject of an event: ``plan2flow.<tenant>.<label of plan>.<kind>.<event>``.

    >>> subject_for("acme", "etl", "plan2flow.task.started")
    'plan2flow.acme.etl.task.started'
    """
    kind, event = split_type(event_type)
    return ".".join((ROOT, check_label(tenant, "tenant"), label_for(plan), kind, event))


def split_type(event_type: str) -> tuple[str, str]:
    """``plan2flow.<kind>.<event>`` → ``(kind, event)``."""
    parts = event_type.split(".")
    if len(parts) != 3 or parts[0] != ROOT or not all(_TOKEN.match(p) for p in parts[1:]):
        raise InvalidSubject(
            f"event type {event_type!r} is not 'plan2flow.<kind>.<event>' "
            "(letters, digits, '_' and '-' in each part)"
        )
    return parts[1], parts[2]


def check_pattern(pattern: str) -> str:
    """``pattern`` when it is a valid NATS subject pattern, else :class:`InvalidSubject`."""
    tokens = pattern.split(".")
    for index, token in enumerate(tokens):
        if token == ">":
            if index != len(tokens) - 1:
                raise InvalidSubject(f"pattern {pattern!r}: '>' may only be the last token")
        elif token == "*":
            continue
        elif not token or any(c in token for c in " \t\r\n*>"):
            raise InvalidSubject(
                f"pattern {pattern!r}: token {index + 1} ({token!r}) is empty or has a space, "
                "'*' or '>' inside it"
            )
    return pattern


def matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` matches ``pattern`` with NATS semantics.

    >>> matches("plan2flow.*.*.task.*", "plan2flow.acme.etl.task.started")
    True
    >>> matches("plan2flow.acme.>", "plan2flow.acme"), matches("plan2flow.>", "plan2flow.a.b")
    (False, True)
    """
    want = pattern.split(".")
    have = subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have):
            return False
        if token != "*" and token != have[index]:
            return False
    return len(have) == len(want)


def to_wire(pattern: str, root: str) -> str:
    """A pattern over ``plan2flow.…`` subjects as a pattern over the subjects a NATS stream
    stores under ``root`` (tests and separate installations use their own roots). Every event
    subject starts with ``plan2flow``, so a leading ``*`` or ``>`` means the same there."""
    check_pattern(pattern)
    head, _, rest = pattern.partition(".")
    if head == ">":
        return f"{root}.>"
    if head not in (ROOT, "*"):
        raise InvalidSubject(f"pattern {pattern!r} cannot match a subject under {ROOT!r}")
    return f"{root}.{rest}" if rest else root


def from_wire(subject: str, root: str) -> str:
    """A stored subject under ``root`` as the event's ``plan2flow.…`` subject."""
    head, _, rest = subject.partition(".")
    if head != root:
        raise InvalidSubject(f"subject {subject!r} is not under {root!r}")
    return f"{ROOT}.{rest}" if rest else ROOT
