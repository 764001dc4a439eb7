"""Every change made through the API, one way: validate, write, audit, notify, wake.

A mutation is a write job that returns its result and the ``Change`` it made; ``audited`` runs
it on the writer with the audit row (HMAC-chained, under the request's actor) and the ``NOTIFY``
to other brains in the same transaction, then wakes this brain's scheduler once it committed.
Refusals are ``ApiError``s with their status (the routes' ``protected`` wrapper answers them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from z4j_brain.audit import Actor
from z4j_brain.notifications import FIRES_CHANNEL, SCHEDULES_CHANNEL
from z4j_brain.schedules import Conflict, NotFound, ScheduleInputError
from z4j_brain.store import Store, StoreError

if TYPE_CHECKING:
    from starlette.requests import Request

    from z4j_brain.brain import Brain

T = TypeVar("T")

#: The bootstrap admin token's name in the audit log (operators appear under their own names).
ADMIN_ACTOR: Final = "admin"


class ApiError(Exception):
    """A refusal with its HTTP status; the message is the ``error`` line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BadRequest(ApiError, ValueError):
    """The request's shape or values are wrong; the message says which."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


@dataclass(frozen=True)
class Change:
    """What a mutation did, for its audit row; ``wake`` is the channel that tells the brains'
    schedulers (``SCHEDULES_CHANNEL`` with the schedule's id, or ``FIRES_CHANNEL``)."""

    action: str
    target: str
    before: Any
    after: Any
    wake: str | None = None
    payload: str = ""


def actor(request: Request) -> Actor:
    """Who made this request (the principal ``api.protected`` found) and from which address."""
    source = request.client.host if request.client else "?"
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return Actor(ADMIN_ACTOR, source)
    return Actor(principal.name, source)


async def audited(
    request: Request,
    job: Callable[[Store, float], tuple[T, Change | None]],
    *,
    now: float | None = None,
) -> T:
    """Run ``job(store, now)`` as one write with its audit row and notification; wake this
    brain's scheduler after the commit. Schedule and store refusals become 400, 404 or 409."""
    brain: Brain = request.app.state.brain
    who = actor(request)
    log = brain.audit
    assert log is not None, "the brain was not prepared"

    def run(store: Store) -> tuple[T, Change | None]:
        at = time.time() if now is None else now
        result, change = job(store, at)
        if change is not None:
            log.append(store, actor=who, action=change.action, target=change.target,
                       before=change.before, after=change.after, now=at)  # fmt: skip
            if change.wake is not None:
                store.notify(change.wake, change.payload)
        return result, change

    try:
        result, change = await brain.write(run)
    except ScheduleInputError as exc:
        raise BadRequest(str(exc)) from None
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    except (Conflict, StoreError) as exc:
        raise ApiError(409, str(exc)) from None
    if change is not None and change.wake == SCHEDULES_CHANNEL:
        brain.scheduler.schedules_changed()
    elif change is not None and change.wake == FIRES_CHANNEL:
        brain.scheduler.fires_waiting()
    return result
