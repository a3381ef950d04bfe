"""The human tier: what the chain asks a person, what it gets back, and who asks.

The chain knows no Prefect: it asks a :class:`HumanDesk`, which the flow runtime provides while a
task runs inside a flow run (:func:`use_desk`; ``plan2flow.flows.escalation_desk`` pauses the
run with a typed form). Outside a flow run there is no desk, and reaching the human tier ends
the escalation as a failure that says so. Everything here is pure but :func:`use_desk`.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from typing import Literal, Protocol

from .variants import Variant

Decision = Literal["accept", "edit", "reject", "retry"]
DECISIONS: tuple[Decision, ...] = ("accept", "edit", "reject", "retry")
"""The options of the human tier's form, in the order they are shown."""
ROUNDS = 3
"""How many answers one escalation asks for at most: a retry, an accept with nothing to keep
and an edit that does not parse each ask again, until then."""
MAX_CODE_CHARS = 200_000
"""The longest code an edit may supply."""
SHOWN_CODE_LINES = 200
"""Lines of the best variant's code shown in the form; the rest is cut."""


@dataclasses.dataclass(frozen=True)
class VariantSummary:
    """One variant as the form shows it: no code, no prompt."""

    label: str
    tier: str
    model: str | None
    score: float
    tests: str
    """``passed/total``, or ``-`` when the tests did not run."""
    problem: str | None


@dataclasses.dataclass(frozen=True)
class HumanQuestion:
    """What a person is asked at the human tier."""

    task_id: str
    plan: str
    module: str
    reason: str
    """Why the chain reached the human tier."""
    threshold: float
    variants: tuple[VariantSummary, ...]
    best: str | None
    """The label of the variant ``accept`` keeps; None when there is none."""
    best_code: str | None
    """The best variant's module, redacted (tokens stay tokens, secrets masked)."""
    round: int
    note: str | None
    """Why the previous answer did not end the escalation."""
    timeout_s: float
    mode: Literal["pause", "suspend"]
    respondents: tuple[str, ...] = ()
    """Who may answer (the policy's); empty: anyone."""


@dataclasses.dataclass(frozen=True)
class HumanAnswer:
    """A person's answer, validated by the desk."""

    decision: Decision
    respondent: str
    code: str | None = None
    comment: str | None = None


class HumanDesk(Protocol):
    """Asks a person and waits: the answer, or None when no one answered in time."""

    def ask(self, question: HumanQuestion) -> HumanAnswer | None: ...


_DESK: contextvars.ContextVar[HumanDesk | None] = contextvars.ContextVar(
    "plan2flow_human_desk", default=None
)


def current_desk() -> HumanDesk | None:
    """The desk of the task running in this context; None outside a flow run."""
    return _DESK.get()


@contextlib.contextmanager
def use_desk(desk: HumanDesk) -> Iterator[None]:
    """Let escalations in this context ask people through ``desk``."""
    token = _DESK.set(desk)
    try:
        yield
    finally:
        _DESK.reset(token)


def summarize(variant: Variant) -> VariantSummary:
    measured = variant.measured
    tests = "-"
    if measured is not None and measured.tests_passed is not None and measured.tests_total:
        tests = f"{len(measured.tests_passed)}/{measured.tests_total}"
    problem = variant.checks or variant.problem
    return VariantSummary(
        label=variant.label,
        tier=variant.tier,
        model=variant.model,
        score=variant.score,
        tests=tests,
        problem=None if problem is None else problem.splitlines()[0][:200],
    )


def edit_problem(code: str | None) -> str | None:
    """Why an edit's code cannot be used (none given, too long, does not parse), or None.

    >>> edit_problem("def f(:\\n")
    'the code does not parse: line 1: invalid syntax'
    >>> edit_problem("def f():\\n    return 1\\n") is None
    True
    """
    if code is None or not code.strip():
        return "an edit needs the code (the form's `code` field)"
    if len(code) > MAX_CODE_CHARS:
        return f"the code is longer than {MAX_CODE_CHARS} characters"
    try:
        ast.parse(code)
    except SyntaxError as error:
        where = f"line {error.lineno}: " if error.lineno else ""
        return f"the code does not parse: {where}{error.msg}"
    except ValueError as error:  # a NUL byte, on older Pythons
        return f"the code does not parse: {error}"
    return None


def _fence(text: str) -> str:
    """A markdown fence longer than any backtick run in ``text``."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def describe(question: HumanQuestion, flow_run_id: str) -> str:
    """The markdown shown above the form: the task, why, the variants and the best code."""
    lines = [
        f"### Escalation of `{question.task_id}` (plan `{question.plan}`) needs a person",
        "",
        f"**Why:** {question.reason}",
        "",
    ]
    if question.note:
        lines += [f"**Asked again (answer {question.round}):** {question.note}", ""]
    lines += [
        f"The threshold is {question.threshold:g}.",
        "",
        "| Variant | Tier | Model | Score | Tests | Problem |",
        "|---|---|---|---|---|---|",
    ]
    for v in question.variants:
        lines.append(
            f"| `{v.label}` | {v.tier} | {_cell(v.model or '-')} | {v.score:.3f} | {v.tests} "
            f"| {_cell(v.problem or '')} |"
        )
    lines.append("")
    if question.best is None or question.best_code is None:
        lines.append("No variant has code to keep: `accept` is not possible.")
    else:
        code = question.best_code.splitlines()
        cut = len(code) > SHOWN_CODE_LINES
        shown = "\n".join(code[:SHOWN_CODE_LINES])
        fence = _fence(shown)
        lines += [
            f"The best variant, `{question.best}`, `{question.module}.py` (redacted):",
            "",
            f"{fence}python",
            shown,
            fence,
        ]
        if cut:
            lines.append(f"({len(code) - SHOWN_CODE_LINES} more lines not shown)")
    lines += [
        "",
        "**Options:** `accept` keeps the best variant as it is; `edit` keeps the module you "
        f"give in `code` (the whole `{question.module}.py`; it is scored and must parse); "
        "`reject` fails the task; `retry` runs the chain again "
        f"(at most {ROUNDS} answers in all).",
        "",
        f"From a terminal: `plan2flow approvals respond {flow_run_id} --option edit "
        '--field code="$(cat module.py)" --as NAME`',
    ]
    return "\n".join(lines)
