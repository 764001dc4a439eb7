"""The bounds on every value a schedule or a preview takes, each with its reason.

Owns the numbers only; the checks that apply them live beside the fields (instants.py,
base.py, interval.py, spec.py). A value outside its bound is refused where it enters, with a
one-line `ScheduleError` naming the field, so no later arithmetic (slot + jitter + grace, a
zone's offset, the store's epoch floats) can overflow or stall the leader.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

#: Earliest instant accepted anywhere (start, end, at, anchor, a preview's --after). Nothing
#: schedules work before it, and zone data before 1900 is local mean time guesswork.
MIN_INSTANT = datetime(1900, 1, 1, tzinfo=timezone.utc)
#: Latest instant accepted, and latest slot any schedule produces (later ones mean the
#: schedule has ended). A year short of `datetime.max`, so a slot plus its jitter, misfire
#: grace and any zone offset is still a datetime.
MAX_INSTANT = datetime(9999, 1, 1, tzinfo=timezone.utc)
#: Shortest interval: the leader ticks at most once per slot, and a sub-second schedule would
#: write more fires than every other schedule together.
MIN_INTERVAL = timedelta(seconds=1)
#: Longest interval: a hundred years (a longer one is a one-shot).
MAX_INTERVAL = timedelta(days=36525)
#: Largest jitter: a day. It delays every slot, so a longer one only hides a wrong schedule.
MAX_JITTER = timedelta(days=1)
#: Largest misfire grace: a week. A fire older than that is a catch-up, not an on-time fire.
MAX_MISFIRE_GRACE = timedelta(days=7)
#: Largest shift of a solar event, either way: half a day keeps an event on its own date.
MAX_SOLAR_OFFSET = timedelta(hours=12)
#: Largest `max_catch_up` (missed slots one catch-up answer fires under `all`): one tick's
#: write stays bounded.
MAX_CATCH_UP = 10_000
#: Most slots one backfill request fires: its one write, and its listing, stay bounded.
MAX_BACKFILL_SLOTS = 10_000
#: A schedule that matches no instant within this many years after its creation is refused:
#: cron expressions whose only matches fall in DST gaps, or on dates decades apart. Between two
#: century years that are not leap years, every date falls on every weekday within 28 years, so
#: a cron expression that can match at all matches within 28 years; only a Feb 29 on a given
#: weekday across such a century year (2100, 2200, ...) waits longer (up to 40).
FIRES_WITHIN_YEARS = 28


def describe_instant_range() -> str:
    return (
        f"{MIN_INSTANT.isoformat().replace('+00:00', 'Z')} to "
        f"{MAX_INSTANT.isoformat().replace('+00:00', 'Z')}"
    )
