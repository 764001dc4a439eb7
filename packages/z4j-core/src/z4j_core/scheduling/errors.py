"""The one exception type the scheduler core raises for bad schedules and bad arguments.

Owns nothing else. A `ScheduleError` message is shown to users as is (CLI, API), so it names
the bad value and, where it can, says what would be accepted.
"""

from __future__ import annotations


class ScheduleError(ValueError):
    """A schedule, or an argument given to one, is invalid; the message names the bad value."""


def explain(exc: BaseException) -> str:
    """One line for an error met while computing a schedule: a `ScheduleError` speaks for
    itself; anything else is named by its type, since it is a bug or an unrepresentable value."""
    if isinstance(exc, ScheduleError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
