"""The escalation chain's errors: one root, so that the command line ends them in one line.

::

    EscalationError
    ├── HostDenied          a request to a host the policy does not allow (2)
    ├── RedactionFailed     the gateway cannot make a text safe to send, or to restore (2)
    ├── BudgetExceeded      the next call could cost more than the budget has left (2)
    ├── ModelCallFailed     a model did not answer: retries spent, not retryable, a long wait (2)
    ├── AnswerInvalid       a model's answer is not the JSON asked for (2)
    ├── EscalationFailed    no variant reached the threshold and no tier is left (1)
    │   └── HumanTierReached  it ended at the human tier: rejected, unanswered, no one to ask (1)
    ├── JournalError        the escalation journal cannot be read or written (2)
    └── RecordNotFound      no journal record has the id asked for (1)
"""

from __future__ import annotations


class EscalationError(Exception):
    """The root of the escalation chain's errors; ``exit_status`` is the command line's."""

    exit_status = 2


class HostDenied(EscalationError):
    """A request to a host that is not in the policy's ``allowed_hosts`` (deny by default)."""


class RedactionFailed(EscalationError):
    """The gateway could not redact a text, or a token did not come back intact in an answer:
    nothing is sent, nothing is kept, and the chain goes to the human tier."""


class BudgetExceeded(EscalationError):
    """The next call's largest cost would take the spending past ``budget_usd``."""


class ModelCallFailed(EscalationError):
    """A model call that gave no answer. ``escalate`` is true when the server asked for a wait
    longer than the policy allows: the chain moves on rather than sleeping."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        attempts: int = 1,
        delays: tuple[float, ...] = (),
        escalate: bool = False,
        structured_output_refused: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.delays = delays
        self.escalate = escalate
        self.structured_output_refused = structured_output_refused


class EscalationFailed(EscalationError):
    """An escalation that kept nothing; the message names the task, the tier reached and why,
    and ``record_id`` the journal record that tells the rest."""

    exit_status = 1

    def __init__(self, message: str, *, tier_reached: str, record_id: str) -> None:
        super().__init__(message)
        self.tier_reached = tier_reached
        self.record_id = record_id


class AnswerInvalid(EscalationError):
    """An answer that is not the JSON asked for: its variant scores 0."""


class HumanTierReached(EscalationFailed):
    """The escalation ended at the human tier without a kept variant: a person rejected it, no
    one answered in time, no answer ended it, or no one can be asked (outside a flow run)."""


class JournalError(EscalationError):
    """The journal file cannot be read or written."""


class RecordNotFound(EscalationError):
    """No escalation record has the id asked for."""

    exit_status = 1
