"""Task states, with Celery's names, values and precedence (``state``, ``precedence``)."""

from __future__ import annotations

PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
REJECTED = "REJECTED"
RETRY = "RETRY"
IGNORED = "IGNORED"

#: states after which a task's result will not change
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})
ALL_STATES = frozenset(
    {PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED, REJECTED}
)

#: states from the most to the least final; a state not listed ranks where None is
PRECEDENCE: list[str | None] = [SUCCESS, FAILURE, None, REVOKED, STARTED, RECEIVED,
                                REJECTED, RETRY, PENDING]
PRECEDENCE_LOOKUP: dict[str | None, int] = {s: i for i, s in enumerate(PRECEDENCE)}
NONE_PRECEDENCE = PRECEDENCE_LOOKUP[None]


def precedence(state: str | None) -> int:
    """The state's rank in PRECEDENCE: lower means more final. Custom states
    ('PROGRESS') rank below SUCCESS and FAILURE and above every other built-in one."""
    return PRECEDENCE_LOOKUP.get(state, NONE_PRECEDENCE)


class state(str):  # Celery's name
    """A state that compares by precedence: ``state(PENDING) < state(SUCCESS)``."""

    def __gt__(self, other: str) -> bool:
        return precedence(self) < precedence(other)

    def __ge__(self, other: str) -> bool:
        return precedence(self) <= precedence(other)

    def __lt__(self, other: str) -> bool:
        return precedence(self) > precedence(other)

    def __le__(self, other: str) -> bool:
        return precedence(self) >= precedence(other)
