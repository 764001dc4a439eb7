"""Schedules in words, for the CLI and the API ("at 01:30 every day, America/New_York").

Owns the wording only. Must never change what a schedule means: when a cron expression has no
short reading, the words fall back to quoting the expression.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from z4j_core.scheduling.cron import CronRule
    from z4j_core.scheduling.solar import SolarSchedule

WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTHS = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
ORDINALS = ("", "first", "second", "third", "fourth", "fifth")


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _runs(values: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _step(values: list[int], low: int, high: int) -> int | None:
    """The step n when `values` is exactly low, low+n, ... up to high (n > 1)."""
    if len(values) < 2 or values[0] != low:
        return None
    step = values[1] - values[0]
    if step < 2 or values != list(range(low, high + 1, step)):
        return None
    return step


def describe_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


def _describe_times(rule: CronRule) -> str:
    seconds, minutes, hours = (
        _bits(rule.second_mask),
        _bits(rule.minute_mask),
        _bits(rule.hour_mask),
    )
    every_minute = len(minutes) == 60
    every_hour = len(hours) == 24
    second_part = ""
    if rule.has_seconds and seconds != [0]:
        step = _step(seconds, 0, 59)
        if len(seconds) == 60:
            second_part = "every second"
        elif step:
            second_part = f"every {step} seconds"
        else:
            second_part = f"at second {_join([str(s) for s in seconds])}"
    if every_minute and every_hour:
        return second_part or "every minute"
    if len(hours) * len(minutes) <= 6 and not every_hour and not second_part:
        times = [f"{h:02d}:{m:02d}" for h in hours for m in minutes]
        return f"at {_join(times)}"
    minute_step = _step(minutes, 0, 59)
    if every_minute:
        minute_part = "every minute"
    elif minute_step:
        minute_part = f"every {minute_step} minutes"
    else:
        minute_part = f"at minute {_join([str(m) for m in minutes])}"
    if every_hour:
        hour_part = "" if every_minute or minute_step else "of every hour"
    else:
        hour_step = _step(hours, 0, 23)
        if hour_step:
            hour_part = f"every {hour_step} hours"
        else:
            hour_part = "during hour " + _join(
                [f"{a:02d}" if a == b else f"{a:02d}-{b:02d}" for a, b in _runs(hours)]
            )
    return " ".join(p for p in (second_part, minute_part, hour_part) if p)


def _describe_days(rule: CronRule) -> str:
    parts: list[str] = []
    if rule.dom_restricted:
        days = _bits(rule.dom_mask)
        words = [str(a) if a == b else f"{a}-{b}" for a, b in _runs(days)]
        if rule.dom_last:
            words.append("the last day")
        parts.append(
            f"on day {_join(words)} of the month" if days else "on the last day of the month"
        )
    if rule.dow_restricted:
        weekday_words = [
            WEEKDAYS[a] if a == b else f"{WEEKDAYS[a]} to {WEEKDAYS[b]}"
            for a, b in _runs(_bits(rule.dow_mask))
        ]
        for weekday, nth_mask, last in rule.nth:
            which = [ORDINALS[n] for n in _bits(nth_mask)] + (["last"] if last else [])
            weekday_words.append(f"the {_join(which)} {WEEKDAYS[weekday]} of the month")
        parts.append("on " + _join(weekday_words))
    joiner = " and " if rule.days_and else " or "
    days_text = joiner.join(parts) if parts else "every day"
    months = _bits(rule.month_mask)
    if len(months) < 12:
        days_text += " in " + _join([MONTHS[m] for m in months])
    return days_text


def describe_cron(rule: CronRule) -> str:
    return f"{_describe_times(rule)} {_describe_days(rule)}"


def describe_solar(schedule: SolarSchedule) -> str:
    event = schedule.event
    if event in ("dawn", "dusk"):
        event = f"{schedule.depression} {event}"
    elif event in ("noon", "midnight"):
        event = f"solar {event}"
    offset = schedule.offset
    shift = ""
    if offset:
        sign = "+" if offset > timedelta(0) else "-"
        shift = f" {sign}{describe_duration(abs(offset))}"
    return (
        f"at {event}{shift} at latitude {schedule.latitude}, longitude {schedule.longitude}"
        f", {schedule.timezone.key}"
    )
