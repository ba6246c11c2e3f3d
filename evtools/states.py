"""Task state names, the sets they form, and their precedence (as in ``celery.states``)."""

from __future__ import annotations

__all__ = (
    "PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "REVOKED", "REJECTED",
    "RETRY", "IGNORED", "READY_STATES", "UNREADY_STATES", "EXCEPTION_STATES",
    "PROPAGATE_STATES", "ALL_STATES", "precedence", "state",
)

PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
REJECTED = "REJECTED"
RETRY = "RETRY"
IGNORED = "IGNORED"

READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})
ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED})

# Highest precedence first. ``None`` marks where any state not listed here
# (a custom state such as "PROGRESS") ranks.
PRECEDENCE = [SUCCESS, FAILURE, None, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING]
PRECEDENCE_LOOKUP: dict[str | None, int] = {name: rank for rank, name in enumerate(PRECEDENCE)}
NONE_PRECEDENCE = PRECEDENCE_LOOKUP[None]


def precedence(state: str | None) -> int:
    """Return the rank of ``state``: a lower number means a state that wins."""
    return PRECEDENCE_LOOKUP.get(state, NONE_PRECEDENCE)


class state(str):  # noqa: N801 - the name is Celery's public API
    """A state name whose comparisons follow precedence: ``state(PENDING) < state(SUCCESS)``."""

    def __gt__(self, other: str) -> bool:
        return precedence(self) < precedence(other)

    def __ge__(self, other: str) -> bool:
        return precedence(self) <= precedence(other)

    def __lt__(self, other: str) -> bool:
        return precedence(self) > precedence(other)

    def __le__(self, other: str) -> bool:
        return precedence(self) >= precedence(other)

    __hash__ = str.__hash__
