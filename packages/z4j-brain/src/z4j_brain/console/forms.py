"""From a console form to the API's request bodies: a schedule's spec, its create and edit
bodies, and the tasks page's filters. Pure: form fields in, dicts out; a field that cannot be
read raises ``FormError`` naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

#: The schedule kinds the form offers, as the core names them.
KINDS: Final = ("cron", "interval", "oneshot", "solar")
#: The tasks page's time windows: (query value, label, seconds; None is no limit).
WINDOWS: Final = (
    ("15m", "last 15 minutes", 900),
    ("1h", "last hour", 3600),
    ("24h", "last 24 hours", 86400),
    ("7d", "last 7 days", 7 * 86400),
    ("", "any time", None),
)
#: The tasks page's filters, as the query names them.
TASK_FILTERS: Final = ("engine", "app", "name", "state", "task_id", "window")


class FormError(ValueError):
    """A form field that cannot be read; the message names it and says what to do."""


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def spec_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The schedule spec (``schedule`` of a create or edit) the form's kind fields spell, as
    the CLI's ``--cron``/``--every``/``--at``/``--solar`` options spell it."""
    kind = _text(form, "kind") or "cron"
    zone = _text(form, "timezone")
    data: dict[str, Any]
    if kind == "cron":
        expression = _text(form, "expression")
        if not expression:
            raise FormError("give a cron expression (e.g. */5 * * * *)")
        data = {"kind": "cron", "expression": expression}
    elif kind == "interval":
        every = _text(form, "every")
        if not every:
            raise FormError("give the interval (e.g. 30s, 5m, 2h)")
        data = {"kind": "interval", "every": every}
        if _text(form, "anchor"):
            data["anchor"] = _text(form, "anchor")
    elif kind == "oneshot":
        at = _text(form, "at")
        if not at:
            raise FormError("give the instant (ISO 8601, e.g. 2030-01-01T09:00:00+01:00)")
        data = {"kind": "oneshot", "at": at}
        zone = zone or "UTC"
    elif kind == "solar":
        data = {"kind": "solar", "event": _text(form, "event") or "sunrise"}
        for field, key in (("latitude", "latitude"), ("longitude", "longitude")):
            try:
                data[key] = float(_text(form, field))
            except ValueError:
                raise FormError(f"{field} must be a number (degrees)") from None
    else:
        raise FormError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if zone:
        data["timezone"] = zone
    return data


def form_from_spec(spec: Mapping[str, Any]) -> dict[str, str]:
    """The form fields that spell ``spec`` (to fill the edit form)."""
    fields = {"kind": str(spec.get("kind", "cron")), "timezone": str(spec.get("timezone") or "")}
    for key in ("expression", "every", "anchor", "at", "event", "latitude", "longitude"):
        if spec.get(key) is not None:
            fields[key] = str(spec[key])
    return fields


def _json_field(form: Mapping[str, Any], name: str, kind: type) -> Any:
    raw = _text(form, name)
    if not raw:
        return kind()
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise FormError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        expected = "a JSON list" if kind is list else "a JSON object"
        raise FormError(f"{name} must be {expected}")
    return value


def schedule_body(form: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """The body of ``POST /schedules`` (``creating``) or ``PATCH /schedules/{ref}``."""
    body: dict[str, Any] = {"schedule": spec_from_form(form)}
    for name in ("name", "task", "engine", "app", "description"):
        value = _text(form, name)
        if value or (name == "description" and not creating):
            body[name] = value
    if creating:
        for name in ("name", "task", "engine"):
            if not body.get(name):
                raise FormError(f"give the schedule's {name}")
        body["enabled"] = form.get("paused") is None
    body["args"] = _json_field(form, "args", list)
    body["kwargs"] = _json_field(form, "kwargs", dict)
    if form.get("force") is not None:
        body["force"] = True
    return body


def bulk_body(form: Mapping[str, Any]) -> dict[str, Any]:
    """A bulk retry or cancel body (docs/actions.md) from the tasks page's filters: the state
    is needed (it says which tasks), the others narrow it."""
    state = _text(form, "state")
    if not state:
        raise FormError("choose the state of the tasks to act on (State), then filter again")
    body: dict[str, Any] = {"states": [state]}
    for name, field in (("engine", "engine"), ("app", "app"), ("name", "task")):
        if _text(form, name):
            body[field] = _text(form, name)
    since = window_seconds(_text(form, "window"))
    if since is not None:
        body["since"] = since
    return body


def task_filters(query: Mapping[str, Any]) -> dict[str, str]:
    """The tasks page's filters that are set, as given."""
    return {k: _text(query, k) for k in TASK_FILTERS if _text(query, k)}


def window_seconds(window: str) -> float | None:
    for value, _, seconds in WINDOWS:
        if value == window:
            return seconds
    raise FormError(f"window {window!r} is not one of {', '.join(w[0] for w in WINDOWS if w[0])}")
