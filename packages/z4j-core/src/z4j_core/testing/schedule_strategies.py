"""Hypothesis strategies for schedules as users write them: every cron field syntax, IANA zones,
instants across 1900-2200 (and a few far outside), and duration fields in every spelling.

For the fuzz tests of the scheduler core and the brain's API. Needs hypothesis (a test tool);
nothing in z4j imports this module. The number of examples scales with `Z4J_FUZZ_SCALE`
(`examples(n)`: n in CI, n times the scale in `bench/`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import available_timezones

from hypothesis import strategies as st

#: Multiplies the examples of every fuzz test (1 in CI; bench/bench_fuzz_schedules.py sets more).
SCALE_ENV = "Z4J_FUZZ_SCALE"

ZONES = sorted(available_timezones() - {"localtime", "posixrules", "Factory"})
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def examples(ci_count: int) -> int:
    """How many examples a fuzz test runs: `ci_count` times `Z4J_FUZZ_SCALE`."""
    return max(1, int(ci_count * float(os.environ.get(SCALE_ENV, "1"))))


def _term(low: int, high: int, names: tuple[str, ...] = ()) -> Any:
    value = st.integers(low, high)
    single = st.one_of(value.map(str), st.sampled_from(names)) if names else value.map(str)
    ranged = st.tuples(value, value).map(lambda ab: f"{ab[0]}-{ab[1]}")  # reversed ones too
    equal = value.map(lambda v: f"{v}-{v}")
    step = st.integers(1, max(1, high - low + 1))
    stepped = st.one_of(
        step.map(lambda s: f"*/{s}"),
        st.tuples(value, step).map(lambda vs: f"{vs[0]}/{vs[1]}"),
        st.tuples(value, value, step).map(lambda t: f"{min(t[0], t[1])}-{max(t[0], t[1])}/{t[2]}"),
    )
    return st.one_of(single, ranged, equal, stepped, st.just("*"))


def _field(low: int, high: int, names: tuple[str, ...] = (), extra: Any = None) -> Any:
    term = _term(low, high, names)
    if extra is not None:
        term = st.one_of(term, extra)
    return st.one_of(st.just("*"), term, st.lists(term, min_size=2, max_size=4).map(",".join))


def cron_expressions() -> Any:
    """Cron expressions in every syntax the core documents, valid or not (5 or 6 fields)."""
    weekday = st.integers(0, 7).map(str) | st.sampled_from(DAY_NAMES)
    dow_extra = st.one_of(
        st.tuples(weekday, st.integers(1, 5)).map(lambda wn: f"{wn[0]}#{wn[1]}"),
        weekday.map(lambda w: f"{w}L"),
        weekday.map(lambda w: f"L{w}"),
    )
    fields = st.tuples(
        _field(0, 59),
        _field(0, 23),
        _field(1, 31, extra=st.just("L")),
        _field(1, 12, MONTH_NAMES),
        _field(0, 7, DAY_NAMES, extra=dow_extra),
        st.one_of(st.none(), _field(0, 59)),
    )
    built = fields.map(lambda f: " ".join(x for x in f if x is not None))
    aliases = st.sampled_from(["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@midnight"])
    return st.one_of(built, aliases)


def zones() -> Any:
    return st.sampled_from(ZONES)


def instants(low: int = 1900, high: int = 2200) -> Any:
    """Aware instants from `low` to `high` with random fixed offsets (whole minutes)."""
    offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
    return st.builds(
        lambda dt, tz: dt.replace(tzinfo=tz),
        st.datetimes(datetime(low, 1, 2), datetime(high, 12, 30)),
        offsets,
    )


def durations() -> Any:
    """Duration field values as users write them: seconds (int, float), unit strings, and some
    that overflow or are nonsense."""
    seconds = st.one_of(
        st.integers(0, 2 * 86400),
        st.integers(-10, 10**12),
        st.floats(allow_nan=True, allow_infinity=True),
    )
    amounts = st.one_of(st.integers(0, 90), st.integers(0, 10**12))
    units = st.tuples(amounts, st.sampled_from(["ms", "s", "m", "h", "d", "w"]))
    texts = st.one_of(
        units.map(lambda nu: f"{nu[0]}{nu[1]}"),
        st.lists(units, min_size=2, max_size=3).map(lambda ps: "".join(f"{n}{u}" for n, u in ps)),
        st.text(max_size=12),
    )
    return st.one_of(seconds, texts)


def schedule_specs() -> Any:
    """Whole schedules as the API takes them (`schedule_from_dict`), valid or not."""
    common = st.fixed_dictionaries(
        {},
        optional={
            "timezone": st.one_of(zones(), st.sampled_from(["", "localtime", "Mars/Base"])),
            "start": instants().map(lambda d: d.isoformat()),
            "end": instants().map(lambda d: d.isoformat()),
            "jitter": durations(),
            "misfire_grace": durations(),
            "catch_up": st.sampled_from(["skip", "one", "all"]),
            "max_catch_up": st.integers(-1, 10**13),
        },
    )
    cron = st.fixed_dictionaries(
        {"kind": st.just("cron"), "expression": cron_expressions()},
        optional={"day_and": st.booleans()},
    )
    interval = st.fixed_dictionaries(
        {"kind": st.just("interval"), "every": durations()},
        optional={"anchor": instants().map(lambda d: d.isoformat())},
    )
    oneshot = st.fixed_dictionaries(
        {"kind": st.just("oneshot"), "at": instants(1890, 9999).map(lambda d: d.isoformat())}
    )
    solar = st.fixed_dictionaries(
        {
            "kind": st.just("solar"),
            "event": st.sampled_from(["sunrise", "sunset", "dawn", "dusk", "noon", "midnight"]),
            "latitude": st.floats(-95, 95),
            "longitude": st.floats(-185, 185),
        },
        optional={"offset": durations(), "depression": st.sampled_from(["civil", "nautical"])},
    )
    kinds = st.one_of(cron, interval, oneshot, solar)
    return st.tuples(kinds, common).map(lambda kc: {**kc[1], **kc[0]})
