"""The OpenAPI 3.1 document of the brain's HTTP API, served at ``/api/v1/openapi.json``.

Owns the description of every HTTP route (paths, parameters, bodies, answers); a test checks
that every route the app serves is described here and nothing else is. Written by hand so that
it reads as documentation; the shapes match what ``api`` returns.
"""

from __future__ import annotations

from typing import Any, Final

API_PREFIX: Final = "/api/v1"
OPENAPI_PATH: Final = f"{API_PREFIX}/openapi.json"

_ERROR = {"$ref": "#/components/schemas/Error"}
_NUM = {"type": ["number", "null"]}
_STR = {"type": ["string", "null"]}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _ok(_ERROR, description)


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind},
    }


def _list_of(key: str, ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}}},
        "required": [key],
    }


_AUTH_ERRORS = {
    "401": _err("The admin token is missing or wrong."),
    "429": _err("This address presented too many bad tokens; see Retry-After."),
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {"type": "string", "description": "One line saying what is wrong."}
        },
        "required": ["error"],
    },
    "CommandRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "engine", "app", "task"],
        "properties": {
            "kind": {"enum": ["enqueue", "fire", "trigger_now"]},
            "engine": {"type": "string", "description": "Engine name, e.g. huey, celery."},
            "app": {"type": "string", "description": "The application's name (agents' hello)."},
            "task": {"type": "string", "description": "Task name as the engine knows it."},
            "args": {"type": "array", "default": []},
            "kwargs": {"type": "object", "default": {}},
            "options": {
                "type": "object",
                "description": "Native options: queue, priority, countdown, expires...",
            },
            "fire_id": {**_STR, "description": "Required for fire: the deterministic fire id."},
            "schedule_id": _STR,
            "slot": _STR,
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Only agents whose labels include these may receive it.",
            },
            "deadline": {**_NUM, "description": "Seconds the agent has to answer (default 30)."},
        },
    },
    "CommandOutcome": {
        "type": "object",
        "properties": {
            "command_id": {"type": "string"},
            "agent_instance": {"type": "string"},
            "status": {
                "type": "string",
                "description": "enqueued, duplicate, rejected, failed, or unknown (no answer "
                "before the deadline: the brain cannot know whether it ran).",
            },
            "native_id": {**_STR, "description": "The engine's own job id when enqueued."},
            "reason": {"type": "string"},
        },
    },
    "Command": {
        "type": "object",
        "description": "A command as recorded, with its answer.",
        "properties": {
            "command_id": {"type": "string"},
            "agent_instance": {"type": "string"},
            "kind": {"type": "string"},
            "engine": {"type": "string"},
            "app": {"type": "string"},
            "task": {"type": "string"},
            "payload": {"type": "object"},
            "fire_id": _STR,
            "status": {"type": "string", "description": "pending until answered."},
            "native_id": _STR,
            "reason": {"type": "string"},
            "created_at": {"type": "number"},
            "deadline_at": {"type": "number"},
            "answered_at": _NUM,
        },
    },
    "Task": {
        "type": "object",
        "description": "The latest state of one task (times are epoch seconds).",
        "properties": {
            "engine": {"type": "string"},
            "task_id": {"type": "string"},
            "name": {"type": "string"},
            "state": {"type": "string"},
            "app": _STR,
            "queue": _STR,
            "worker": _STR,
            "enqueued_at": _NUM,
            "received_at": _NUM,
            "started_at": _NUM,
            "finished_at": _NUM,
            "runtime": _NUM,
            "retries": {"type": ["integer", "null"]},
            "exception": _STR,
            "message": _STR,
            "traceback": {**_STR, "description": "Redacted by the agent before it left."},
            "fire_id": _STR,
            "updated_at": {"type": "number"},
        },
    },
    "Event": {
        "type": "object",
        "description": "One stored lifecycle event; position orders all events in the store.",
        "properties": {
            "position": {"type": "integer"},
            "agent_instance": {"type": "string"},
            "seq": {"type": "integer"},
            "stored_at": {"type": "number"},
            "app": {"type": "string"},
            "kind": {"type": "string"},
            "at": {"type": "number"},
            "engine": {"type": "string"},
            "task_id": {"type": "string"},
            "task_name": {"type": "string"},
            "queue": _STR,
            "worker": _STR,
            "args": _STR,
            "kwargs": _STR,
            "result": _STR,
            "runtime": _NUM,
            "retries": {"type": ["integer", "null"]},
            "exception": _STR,
            "message": _STR,
            "traceback": _STR,
            "fire_id": _STR,
            "extra": {"type": "object"},
        },
    },
    "Agent": {
        "type": "object",
        "properties": {
            "agent_instance": {"type": "string"},
            "token_name": {"type": "string"},
            "app": {"type": "string"},
            "host": {"type": "string"},
            "pid": {"type": "integer"},
            "engines": {"type": "array", "items": {"type": "object"}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "agent_version": {"type": "string"},
            "session_id": _STR,
            "connected": {"type": "boolean"},
            "connected_at": _NUM,
            "last_seen_at": _NUM,
            "dropped_total": {"type": "integer"},
            "dropped_reason": {"type": "string"},
        },
    },
    "Inventory": {
        "type": "object",
        "properties": {
            "agent_instance": {"type": "string"},
            "engine": {"type": "string"},
            "app": {"type": "string"},
            "tasks": {"type": "array", "items": {"type": "object"}},
            "schedules": {"type": "array", "items": {"type": "object"}},
            "queues": {"type": "array", "items": {"type": "string"}},
            "workers": {"type": "array", "items": {"type": "string"}},
            "updated_at": {"type": "number"},
        },
    },
    "TokenRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "expires_in": {**_NUM, "description": "Lifetime in seconds (default: never)."},
        },
    },
    "Token": {
        "type": "object",
        "description": "A token as listed: never its secret.",
        "properties": {
            "name": {"type": "string"},
            "status": {"enum": ["active", "expired", "revoked"]},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "created_at": {"type": "number"},
            "expires_at": _NUM,
            "revoked_at": _NUM,
        },
    },
    "NewToken": {
        "allOf": [
            {"$ref": "#/components/schemas/Token"},
            {
                "type": "object",
                "properties": {
                    "token": {
                        "type": "string",
                        "description": "The agent token: returned only here, never again.",
                    }
                },
            },
        ]
    },
}


def openapi_document(version: str) -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"adminToken": []}]
    p = API_PREFIX
    paths: dict[str, Any] = {
        f"{p}/commands": {
            "post": {
                "summary": "Send a command to one connected agent and wait for its answer",
                "security": secured,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/CommandRequest"}
                        }
                    },
                },
                "responses": {
                    "200": _ok({"$ref": "#/components/schemas/CommandOutcome"}),
                    "400": _err("The request is malformed; the error says which field."),
                    "409": _err("No connected agent serves that engine, app and labels."),
                    **_AUTH_ERRORS,
                },
            }
        },
        f"{p}/commands/{{command_id}}": {
            "get": {
                "summary": "A command and its answer",
                "security": secured,
                "parameters": [
                    {
                        "name": "command_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _ok({"$ref": "#/components/schemas/Command"}),
                    "404": _err("No such command."),
                    **_AUTH_ERRORS,
                },
            }
        },
        f"{p}/tasks": {
            "get": {
                "summary": "Latest state per task, most recently updated first",
                "security": secured,
                "parameters": [
                    _query("state", "Only tasks in this state (e.g. failed)."),
                    _query("name", "Only tasks with this name."),
                    _query("engine", "Only this engine."),
                    _query("app", "Only this app."),
                    _query("task_id", "Only this task id."),
                    _query("limit", "At most this many (default 100, max 10000).", "integer"),
                ],
                "responses": {"200": _ok(_list_of("tasks", "Task")), **_AUTH_ERRORS},
            }
        },
        f"{p}/tasks/{{task_id}}/events": {
            "get": {
                "summary": "Every stored event of one task, in order",
                "security": secured,
                "parameters": [
                    {
                        "name": "task_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    _query("engine", "Only this engine's task of that id."),
                ],
                "responses": {"200": _ok(_list_of("events", "Event")), **_AUTH_ERRORS},
            }
        },
        f"{p}/events": {
            "get": {
                "summary": "Events stored after a position (paging, and following with wait)",
                "security": secured,
                "parameters": [
                    _query("after", "Position to start after (0: from the oldest).", "integer"),
                    _query("limit", "At most this many (default 1000, max 10000).", "integer"),
                    _query(
                        "wait",
                        "When none is there yet, wait up to this many seconds (max 30) for "
                        "the first new one (long poll).",
                        "integer",
                    ),
                ],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "events": _list_of("events", "Event")["properties"]["events"],
                                "next_after": {
                                    "type": "integer",
                                    "description": "Pass as after= to get the next page.",
                                },
                                "latest": {
                                    "type": "integer",
                                    "description": "Position of the newest stored event.",
                                },
                            },
                        }
                    ),
                    **_AUTH_ERRORS,
                },
            }
        },
        f"{p}/agents": {
            "get": {
                "summary": "Agents connected now and recently seen",
                "security": secured,
                "parameters": [
                    _query("connected", "1: only agents connected now."),
                    _query(
                        "seen_within",
                        "Only agents connected now or seen within this many seconds.",
                        "integer",
                    ),
                ],
                "responses": {"200": _ok(_list_of("agents", "Agent")), **_AUTH_ERRORS},
            }
        },
        f"{p}/inventory": {
            "get": {
                "summary": "What each agent reported it knows: tasks, schedules, queues, workers",
                "security": secured,
                "parameters": [_query("agent_instance", "Only this agent instance.")],
                "responses": {"200": _ok(_list_of("inventory", "Inventory")), **_AUTH_ERRORS},
            }
        },
        f"{p}/tokens": {
            "get": {
                "summary": "Agent tokens (never their secrets)",
                "security": secured,
                "responses": {"200": _ok(_list_of("tokens", "Token")), **_AUTH_ERRORS},
            },
            "post": {
                "summary": "Create an agent token; the answer is the only time it is shown",
                "security": secured,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/TokenRequest"}
                        }
                    },
                },
                "responses": {
                    "201": _ok({"$ref": "#/components/schemas/NewToken"}, "Created"),
                    "400": _err("Bad name, labels or lifetime."),
                    "409": _err("A token of that name exists (names stay taken after revoke)."),
                    **_AUTH_ERRORS,
                },
            },
        },
        f"{p}/tokens/{{name}}": {
            "delete": {
                "summary": "Revoke a token; agents using it are cut off within a second",
                "security": secured,
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _ok({"$ref": "#/components/schemas/Token"}),
                    "404": _err("No token of that name."),
                    **_AUTH_ERRORS,
                },
            }
        },
        OPENAPI_PATH: {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _ok({"type": "object"})},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the brain answers and how many agents are connected",
                "security": [],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"const": "ok"},
                                "agents_connected": {"type": "integer"},
                            },
                        }
                    )
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Figures in the Prometheus text format",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    paths.update(_schedule_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "z4j brain API",
            "version": version,
            "description": (
                "The operator API of a z4j brain. Every /api/v1 route but this document needs "
                "`Authorization: Bearer <admin token>`. Errors are JSON objects with one "
                "`error` line. Agents connect to the WebSocket at /v1/agent (see "
                "docs/protocol.md), not described here."
            ),
        },
        "security": secured,
        "paths": _with_bad_request(paths),
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {**_SCHEMAS, **_SCHEDULE_SCHEMAS},
        },
    }


def _with_bad_request(paths: dict[str, Any]) -> dict[str, Any]:
    """Every guarded operation may answer 400: a query parameter, path or body it cannot use
    (``protected`` turns each such refusal into a 400 with its ``error`` line)."""
    for item in paths.values():
        for operation in item.values():
            if operation.get("security"):
                operation["responses"].setdefault(
                    "400", _err("A parameter or the body is malformed; the error says which.")
                )
    return paths


_SCHEDULE_SCHEMAS: dict[str, Any] = {
    "ScheduleRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "task", "engine", "schedule"],
        "properties": {
            "id": {"type": "string", "description": "Immutable id (default: generated)."},
            "name": {"type": "string", "description": "Unique; may be changed later."},
            "task": {"type": "string"},
            "engine": {"type": "string"},
            "app": {
                "type": "string",
                "description": "Default: the one app whose agents run this engine.",
            },
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Only agents with these labels may enqueue it.",
            },
            "args": {"type": "array"},
            "kwargs": {"type": "object"},
            "options": {
                "type": "object",
                "properties": {
                    "queue": {"type": "string"},
                    "priority": {"type": "integer"},
                    "expires_seconds": {"type": "number"},
                },
            },
            "schedule": {
                "type": "object",
                "description": "The schedule as docs/schedules.md spells it: kind (cron, "
                "interval, oneshot, solar) and its fields, timezone, start, end, jitter, "
                "catch_up (skip, one, all), misfire_grace, max_catch_up.",
            },
            "description": {"type": "string"},
            "enabled": {"type": "boolean"},
        },
    },
    "Schedule": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "task": {"type": "string"},
            "engine": {"type": "string"},
            "app": {"type": "string"},
            "labels": {"type": "object"},
            "args": {"type": "array"},
            "kwargs": {"type": "object"},
            "options": {"type": "object"},
            "schedule": {"type": "object"},
            "enabled": {"type": "boolean"},
            "pause_note": {"type": "string"},
            "description": {"type": "string"},
            "cursor": {"type": "number", "description": "Newest slot settled (epoch s)."},
            "skipped_through": {**_NUM, "description": "Newest slot skipped by catch-up."},
            "version": {"type": "integer"},
            "created_at": {"type": "number"},
            "created_by": {"type": "string"},
            "updated_at": {"type": "number"},
            "updated_by": {"type": "string"},
            "next_slots": {"type": "array", "items": {"type": "string"}},
            "describe": {"type": "string"},
        },
    },
    "Fire": {
        "type": "object",
        "description": "One fire: a schedule's slot (or a trigger) and its delivery.",
        "properties": {
            "fire_id": {"type": "string"},
            "schedule_id": {"type": "string"},
            "kind": {"enum": ["scheduled", "catch_up", "trigger"]},
            "slot": {"type": "number"},
            "due_at": {"type": "number"},
            "deliver_by": {"type": "number"},
            "state": {
                "enum": [
                    "pending",
                    "delivering",
                    "enqueued",
                    "duplicate",
                    "rejected",
                    "failed",
                    "unknown",
                    "missed",
                ]
            },
            "agent_instance": _STR,
            "native_id": _STR,
            "reason": {"type": "string"},
            "task_state": {**_STR, "description": "History only: the task's latest state."},
        },
    },
    "AuditRow": {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "at": {"type": "number"},
            "actor": {"type": "string"},
            "source": {"type": "string"},
            "action": {"type": "string"},
            "target": {"type": "string"},
            "before": {},
            "after": {},
            "prev_hmac": {"type": "string"},
            "hmac": {"type": "string"},
        },
    },
}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _schedule_paths() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"adminToken": []}]
    p = API_PREFIX
    ref = _path_param("ref")
    one = _ok({"$ref": "#/components/schemas/Schedule"})
    missing = _err("No schedule with that id or name.")
    body = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ScheduleRequest"}}
        },
    }
    note_body = {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"note": {"type": "string"}}}
            }
        },
    }
    return {
        f"{p}/schedules": {
            "get": {
                "summary": "The brain's schedules (native ones agents observe: see /inventory)",
                "security": secured,
                "responses": {"200": _ok(_list_of("schedules", "Schedule")), **_AUTH_ERRORS},
            },
            "post": {
                "summary": "Create a schedule (audited; the leader acts on it at once)",
                "security": secured,
                "requestBody": body,
                "responses": {
                    "201": _ok({"$ref": "#/components/schemas/Schedule"}, "Created"),
                    "400": _err("A value is invalid; the error names it."),
                    "409": _err("The name (or id) is taken."),
                    **_AUTH_ERRORS,
                },
            },
        },
        f"{p}/schedules/{{ref}}": {
            "get": {
                "summary": "One schedule by id or name, with its next slots",
                "security": secured,
                "parameters": [ref],
                "responses": {"200": one, "404": missing, **_AUTH_ERRORS},
            },
            "patch": {
                "summary": "Edit fields of a schedule, live (audited; the cursor is kept)",
                "security": secured,
                "parameters": [ref],
                "requestBody": body,
                "responses": {
                    "200": one,
                    "400": _err("A value is invalid; the error names it."),
                    "404": missing,
                    "409": _err("The new name is taken."),
                    **_AUTH_ERRORS,
                },
            },
            "delete": {
                "summary": "Delete a schedule (audited; its fire history stays)",
                "security": secured,
                "parameters": [ref],
                "responses": {
                    "200": _ok({"type": "object", "properties": {"deleted": {"type": "object"}}}),
                    "404": missing,
                    **_AUTH_ERRORS,
                },
            },
        },
        f"{p}/schedules/{{ref}}/pause": {
            "post": {
                "summary": "Pause a schedule, with an optional note (audited)",
                "security": secured,
                "parameters": [ref],
                "requestBody": note_body,
                "responses": {"200": one, "404": missing, **_AUTH_ERRORS},
            }
        },
        f"{p}/schedules/{{ref}}/resume": {
            "post": {
                "summary": "Resume a schedule; slots that passed while paused do not fire",
                "security": secured,
                "parameters": [ref],
                "responses": {"200": one, "404": missing, **_AUTH_ERRORS},
            }
        },
        f"{p}/schedules/{{ref}}/trigger": {
            "post": {
                "summary": "Fire a schedule now with its own fire id, cadence unchanged",
                "security": secured,
                "parameters": [
                    ref,
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "A retried request with the same key triggers once.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "201": _ok({"type": "object"}, "Triggered: {fire, created: true}"),
                    "200": _ok({"type": "object"}, "Key seen before: the first {fire}"),
                    "404": missing,
                    **_AUTH_ERRORS,
                },
            }
        },
        f"{p}/schedules/{{ref}}/fires": {
            "get": {
                "summary": "A schedule's fires, newest first, with each task's outcome",
                "security": secured,
                "parameters": [ref, _query("limit", "At most this many (default 50).", "integer")],
                "responses": {
                    "200": _ok(_list_of("fires", "Fire")),
                    "404": missing,
                    **_AUTH_ERRORS,
                },
            }
        },
        f"{p}/fires/{{fire_id}}": {
            "get": {
                "summary": "One fire",
                "security": secured,
                "parameters": [_path_param("fire_id")],
                "responses": {
                    "200": _ok({"$ref": "#/components/schemas/Fire"}),
                    "404": _err("No such fire."),
                    **_AUTH_ERRORS,
                },
            }
        },
        f"{p}/scheduler": {
            "get": {
                "summary": "This brain's part in scheduling (leader or not) and fires by state",
                "security": secured,
                "responses": {"200": _ok({"type": "object"}), **_AUTH_ERRORS},
            }
        },
        f"{p}/scheduler/applied": {
            "get": {
                "summary": "Wait until this brain's leader acts on a schedule's version",
                "security": secured,
                "parameters": [
                    _query("schedule_id", "The schedule's id."),
                    _query("version", "The version the edit returned.", "integer"),
                    _query("timeout", "Seconds to wait (default 5, max 30).", "number"),
                ],
                "responses": {"200": _ok({"type": "object"}), **_AUTH_ERRORS},
            }
        },
        f"{p}/audit": {
            "get": {
                "summary": "Audit rows in order",
                "security": secured,
                "parameters": [
                    _query("after", "Sequence number to start after.", "integer"),
                    _query("limit", "At most this many (default 100).", "integer"),
                ],
                "responses": {"200": _ok(_list_of("audit", "AuditRow")), **_AUTH_ERRORS},
            }
        },
        f"{p}/audit/verify": {
            "get": {
                "summary": "Check the HMAC chain: OK with the count, or the first bad row",
                "security": secured,
                "responses": {"200": _ok({"type": "object"}), **_AUTH_ERRORS},
            }
        },
    }
