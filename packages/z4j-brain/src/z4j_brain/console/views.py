"""The console's pages and form posts.

Each page asks the API's own operations (``calls.call``) as the logged-in browser and renders
the answers with autoescaping templates; each form post becomes one operation's JSON body,
carrying the form's CSRF token, and its refusal (400, 403, 404, 409) is shown with the
operation's status and message. Nothing here reads or writes the store except the overview's
aggregate figures (read with the caller's app scope). Values that came from an application or
an agent are only ever rendered escaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from z4j_brain.access import Principal
from z4j_brain.brain import Brain
from z4j_brain.console import charts, forms
from z4j_brain.console.calls import (
    Answer,
    LoginNeeded,
    Unavailable,
    call,
    may,
    principal_from,
)
from z4j_brain.sessions import COOKIE, clear_cookie_header, csrf_token, same_origin
from z4j_core.scheduling import ScheduleError

HERE: Final = Path(__file__).parent
#: The overview's window and its chart buckets.
OVERVIEW_SECONDS: Final = 3600
BUCKET_MINUTES: Final = 5
#: How long the overview's aggregate figures are reused, and for how many scopes at most.
FIGURES_SECONDS: Final = 5.0
FIGURES_SCOPES: Final = 64
#: A fire sent more than this long after its slot is late on the overview.
LATE_AFTER_SECONDS: Final = 5.0
#: Largest form body read (a schedule form with its arguments is a few KiB).
MAX_FORM_BYTES: Final = 256 * 1024
#: Rows on one page of the tasks list.
PAGE_SIZE: Final = 50
#: Next fire times the schedule form previews.
PREVIEW_COUNT: Final = 5
#: How often the live stream looks for new events when nothing woke it (other brains' batches
#: on the same Postgres database), and how often it sends a keep-alive comment.
LIVE_POLL_SECONDS: Final = 1.0
LIVE_KEEPALIVE_SECONDS: Final = 15.0
#: A stream ends after this long; the browser reconnects at once, and its session is checked
#: again then (a revoked operator's tab stops within this).
LIVE_MAX_SECONDS: Final = 300.0
#: Open streams per brain; past it, 503 (each holds a connection and polls a shared position).
MAX_LIVE_STREAMS: Final = 256
#: Task states that end a run; failures among them are drawn red.
FAILED_STATES: Final = frozenset({"failed", "rejected", "dead_lettered", "expired"})
FINISHED_STATES: Final = FAILED_STATES | {"succeeded", "revoked", "cancelled", "skipped", "locked"}
CANCELLABLE_STATES: Final = frozenset({"enqueued", "scheduled", "received", "started", "retried"})
AWAITED: Final = "awaiting its first event"
#: The bulk actions the tasks page offers, by the states they apply to.
BULK_ACTIONS: Final = {"retry": FINISHED_STATES, "cancel": CANCELLABLE_STATES}
#: What a task row tells that an awaited run cannot yet.
_AWAITED_UNKNOWNS: Final = "worker runtime retries retried_as fire_id exception message traceback"

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: Any) -> str:
    """Epoch seconds as UTC ISO 8601 to the second ('' for none)."""
    if value in (None, ""):
        return ""
    try:
        moment = datetime.fromtimestamp(float(value), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _ago(value: Any) -> str:
    if value in (None, ""):
        return ""
    seconds = max(0.0, time.time() - float(value))
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _seconds(value: Any) -> str:
    if value in (None, ""):
        return ""
    number = float(value)
    return f"{number * 1000:.0f} ms" if number < 1 else f"{number:.2f} s"


templates.filters["when"] = _when
templates.filters["ago"] = _ago
templates.filters["seconds"] = _seconds


class Viewer:
    """Who is looking (from ``GET /session``) and the CSRF token their forms carry."""

    def __init__(self, principal: Principal, csrf: str) -> None:
        self.principal = principal
        self.csrf = csrf

    def may(self, method: str, template: str) -> bool:
        return may(self.principal, method, template)


#: What a redirect after a form post may announce (``?done=``); any other value is not shown.
DONE: Final = frozenset(
    {"retry", "cancel", "pause", "resume", "trigger", "edit", "delete", "adopt"}
)


def render(
    request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any
) -> HTMLResponse:
    done = request.query_params.get("done")
    html = templates.get_template(name).render(
        request=request,
        viewer=viewer,
        path=request.url.path,
        done=done if done in DONE else None,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def _login_redirect(request: Request) -> Response:
    """To the login page, back here afterwards. A cookie the brain no longer knows is cleared,
    so it is not presented again (each presentation counts as a bad credential)."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    if request.method != "GET":  # a form posted after its session ended: back to its page
        target = _back(request)
    response = RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
    if request.cookies.get(COOKIE):
        brain: Brain = request.app.state.brain
        response.headers["set-cookie"] = clear_cookie_header(brain.config.cookies_secure)
    return response


async def viewer_of(request: Request) -> Viewer:
    """The logged-in viewer; ``LoginNeeded`` without a live session."""
    secret = request.cookies.get(COOKIE)
    if not secret:
        raise LoginNeeded
    answer = await call(request, "GET", "/session")
    if answer.status == 401:
        raise LoginNeeded
    if not answer.ok:  # rate limited, or the store is down: say so, keep the session
        raise Unavailable(answer.status, answer.error)
    source = request.client.host if request.client else "?"
    return Viewer(principal_from(answer.data, source), csrf_token(secret))


Page = Callable[[Request, Viewer], Awaitable[Response]]

#: Marks a fragment the console's script may put into a page.
FRAGMENT_HEADER: Final = "x-z4j-fragment"


def task_url(engine: str, task_id: str, suffix: str = "") -> str:
    """A task's page: each part quoted whole (an agent chooses task ids: `/`, `?`, `\\`)."""
    return f"/task/{quote(engine, safe='')}/{quote(task_id, safe='')}{suffix}"


templates.globals["task_url"] = task_url


def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page or form post that needs a session: without one, to the login page."""

    async def guarded(request: Request) -> Response:
        try:
            viewer = await viewer_of(request)
            return await handler(request, viewer)
        except LoginNeeded:
            return _login_redirect(request)
        except Unavailable as exc:
            return render(request, "error.html", None, exc.status, message=str(exc), back="/")

    guarded.__name__ = handler.__name__
    return guarded


def fragment(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """A part of a page the script fetches (or the live stream): without a session, 401 with
    no body (never the login page, which would land inside the page), and the stale cookie
    cleared."""

    async def guarded(request: Request) -> Response:
        try:
            viewer = await viewer_of(request)
        except Unavailable as exc:
            return Response(str(exc), status_code=exc.status, media_type="text/plain")
        except LoginNeeded:
            response = Response(status_code=401)
            if request.cookies.get(COOKIE):
                brain: Brain = request.app.state.brain
                response.headers["set-cookie"] = clear_cookie_header(brain.config.cookies_secure)
            return response
        response = await handler(request, viewer)
        # The script puts into the page only what carries this (never an API answer or a
        # page that a crafted link made it fetch instead).
        response.headers[FRAGMENT_HEADER] = "1"
        return response

    guarded.__name__ = handler.__name__
    return guarded


def _refused(request: Request, viewer: Viewer, answer: Answer) -> Response:
    return render(
        request,
        "error.html",
        viewer,
        answer.status,
        message=answer.error,
        back=_back(request),
    )


def _back(request: Request) -> str:
    """The page the refused form was on (its Referer's path, this site's only), else `/`."""
    parts = urlsplit(request.headers.get("referer", ""))
    if parts.netloc != request.headers.get("host", ""):
        return "/"
    return _safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))


async def _form(request: Request) -> dict[str, str]:
    """The posted form's fields (urlencoded: the console's forms send nothing else, so no
    multipart parser is needed); a body over ``MAX_FORM_BYTES`` is read as empty, and never
    held past that size."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


async def mutate(
    request: Request,
    viewer: Viewer,
    route: tuple[str, str, dict[str, str]],
    *,
    body: Any,
    form: dict[str, str],
) -> Answer | Response:
    """Call a mutating operation (``route``: method, path template, path parameters) with the
    form's CSRF token; a refusal becomes its page."""
    method, template, params = route
    answer = await call(request, method, template, params, body=body, csrf=form.get("csrf", ""))
    if not answer.ok:
        return _refused(request, viewer, answer)
    return answer


# -- login --------------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme) after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return "/" if target.startswith("/login") else target


async def login_page(request: Request) -> Response:
    return render(request, "login.html", None, next=_safe_next(request.query_params.get("next")))


async def login(request: Request) -> Response:
    form = await _form(request)
    target = _safe_next(form.get("next"))
    if not same_origin(request):
        return render(
            request, "login.html", None, 403, next=target, error="cross-origin login refused"
        )
    token = form.get("token", "").strip()
    if not token:
        return render(
            request,
            "login.html",
            None,
            400,
            next=target,
            error="give your operator token (z4j operators create NAME prints one)",
        )
    answer = await call(request, "POST", "/session", authorization=f"Bearer {token}")
    if not answer.ok:
        message = (
            "that token is wrong, revoked or expired" if answer.status == 401 else answer.error
        )
        return render(request, "login.html", None, answer.status, next=target, error=message)
    response = RedirectResponse(target, status_code=303)
    response.headers["set-cookie"] = answer.headers["set-cookie"]
    return response


@page
async def logout(request: Request, viewer: Viewer) -> Response:
    form = await _form(request)
    answer = await call(request, "DELETE", "/session", csrf=form.get("csrf", ""))
    if not answer.ok:
        return _refused(request, viewer, answer)
    response = RedirectResponse("/login", status_code=303)
    response.headers["set-cookie"] = answer.headers["set-cookie"]
    return response


# -- overview -----------------------------------------------------------------------------------


async def _scope(request: Request, viewer: Viewer) -> list[str] | None:
    """The apps the viewer sees, for the overview's aggregate reads (None: every app)."""
    principal = viewer.principal
    if principal.unscoped:
        return None
    brain: Brain = request.app.state.brain
    return principal.visible(await brain.read(lambda s: s.known_apps()))


#: Per brain (several may share a process: tests, embedding), per scope: (until, figures).
_figures_cache: weakref.WeakKeyDictionary[
    Brain, dict[tuple[str, ...] | None, tuple[float, Any]]
] = weakref.WeakKeyDictionary()


async def _figures(brain: Brain, apps: list[str] | None) -> Any:
    """The overview's aggregates for a scope, read at most every ``FIGURES_SECONDS`` (with
    hundreds of thousands of tasks an hour, counting them takes a good part of a second)."""
    key = None if apps is None else tuple(sorted(apps))
    cache = _figures_cache.setdefault(brain, {})
    cached = cache.get(key)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    since = time.time() - OVERVIEW_SECONDS
    figures = await brain.read(
        lambda s: (
            s.task_outcomes(since, BUCKET_MINUTES * 60, apps, sorted(FINISHED_STATES)),
            s.fire_timeliness(since, LATE_AFTER_SECONDS, apps),
        )
    )
    if len(cache) >= FIGURES_SCOPES:
        cache.clear()
    cache[key] = (now + FIGURES_SECONDS, figures)
    return figures


@page
async def overview(request: Request, viewer: Viewer) -> Response:
    brain: Brain = request.app.state.brain
    apps = await _scope(request, viewer)
    buckets = OVERVIEW_SECONDS // (BUCKET_MINUTES * 60)
    outcomes, timeliness = await _figures(brain, apps)
    per_engine: dict[str, tuple[list[int], list[int]]] = {}
    for row in outcomes:
        if row["state"] not in FINISHED_STATES or not 0 <= row["bucket"] < buckets:
            continue
        done, failed = per_engine.setdefault(row["engine"], ([0] * buckets, [0] * buckets))
        (failed if row["state"] in FAILED_STATES else done)[row["bucket"]] += row["count"]
    engine_charts = [
        (engine, sum(d) + sum(f), sum(f), charts.bars(f"{engine} throughput", d, f, BUCKET_MINUTES))
        for engine, (d, f) in sorted(per_engine.items())
    ]
    agents = (await call(request, "GET", "/agents")).listed("agents")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    abilities: dict[tuple[str, str], set[str]] = {}
    for agent in agents:
        for engine in agent["engines"] or [{"name": "?"}]:
            key = (engine["name"], agent["app"])
            groups.setdefault(key, []).append(agent)
            abilities.setdefault(key, set()).update(
                [*engine.get("capabilities", []), *engine.get("actions", [])]
            )
    queues = (await call(request, "GET", "/queues")).listed("queues")
    schedules = (await call(request, "GET", "/schedules")).listed("schedules")
    attention = [
        s for s in schedules if s["health"]["state"] != "active" or s["health"]["problems"]
    ]
    observed = (await call(request, "GET", "/observed")).listed("observed")
    return render(
        request,
        "overview.html",
        viewer,
        engine_charts=engine_charts,
        fires_chart=charts.share(
            "Fires in the last hour", timeliness, ("on_time", "late", "missed", "waiting")
        ),
        timeliness=timeliness,
        groups=[(key, members, sorted(abilities[key])) for key, members in sorted(groups.items())],
        queues=queues,
        attention=attention,
        schedule_count=len(schedules),
        observed_count=len(observed),
    )


# -- tasks --------------------------------------------------------------------------------------


def next_page_url(filters: dict[str, str], answer: Answer) -> str | None:
    """The "next page" link of the tasks list, from the API's ``next_cursor`` (none on the
    last page)."""
    cursor = answer.data.get("next_cursor") if isinstance(answer.data, dict) else None
    if not cursor:
        return None
    return "/tasks?" + urlencode({**filters, "cursor": cursor})


async def _task_rows(request: Request) -> tuple[dict[str, str], list[dict[str, Any]], str | None]:
    filters = forms.task_filters(request.query_params)
    window = forms.window_seconds(filters.get("window", ""))
    since = None if window is None else time.time() - window
    query: dict[str, Any] = {k: v for k, v in filters.items() if k != "window"}
    query.update(limit=PAGE_SIZE, since=since, cursor=request.query_params.get("cursor"))
    answer = await call(request, "GET", "/tasks", query=query)
    if not answer.ok:
        raise forms.FormError(answer.error)
    return filters, answer.data["tasks"], next_page_url(filters, answer)


@page
async def tasks(request: Request, viewer: Viewer) -> Response:
    try:
        filters, rows, next_url = await _task_rows(request)
    except forms.FormError as exc:
        filters, rows, next_url = forms.task_filters(request.query_params), [], None
        return render(
            request,
            "tasks.html",
            viewer,
            400,
            filters=filters,
            rows=rows,
            next_url=next_url,
            windows=forms.WINDOWS,
            error=str(exc),
            states=_states(),
            rows_url="",
        )
    return render(
        request,
        "tasks.html",
        viewer,
        filters=filters,
        rows=rows,
        next_url=next_url,
        windows=forms.WINDOWS,
        states=_states(),
        error=None,
        bulk=[k for k, states in BULK_ACTIONS.items() if filters.get("state") in states]
        if viewer.may("POST", "/tasks/retry") and not filters.get("task_id")
        else [],
        rows_url="/tasks/rows?"
        + urlencode(
            {
                **filters,
                **(
                    {"cursor": request.query_params["cursor"]}
                    if request.query_params.get("cursor")
                    else {}
                ),
            }
        ),
    )


def _states() -> list[str]:
    from z4j_core.wire.frames import LifecycleKind

    return [k.value for k in LifecycleKind]


@fragment
async def task_rows(request: Request, viewer: Viewer) -> Response:
    try:
        _, rows, _ = await _task_rows(request)
    except forms.FormError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    return render(request, "task_rows.html", viewer, rows=rows)


@page
async def task_detail(request: Request, viewer: Viewer) -> Response:
    engine = request.path_params["engine"]
    task_id = request.path_params["task_id"]
    found = await call(request, "GET", "/tasks", query={"task_id": task_id, "engine": engine})
    rows = found.listed("tasks")
    actions = (
        await call(request, "GET", "/actions", query={"task_id": task_id, "limit": 20})
    ).listed("actions")
    task = rows[0] if rows else _awaited_run(engine, task_id, actions)
    if task is None:
        return render(
            request,
            "error.html",
            viewer,
            404,
            message=f"no task {task_id!r} of {engine}",
            back="/tasks",
        )
    events = await _task_events(request, engine, task_id)
    fire = None
    if task.get("fire_id"):
        answer = await call(request, "GET", "/fires/{fire_id}", {"fire_id": task["fire_id"]})
        fire = answer.data if answer.ok else None
        if fire is not None:
            source = await call(request, "GET", "/schedules/{ref}", {"ref": fire["schedule_id"]})
            fire["schedule_name"] = source.data["name"] if source.ok else None
    args = next(
        (e for e in events if e.get("args") is not None or e.get("kwargs") is not None), None
    )
    return render(
        request,
        "task.html",
        viewer,
        task=task,
        events=events,
        fire=fire,
        actions=actions,
        args=args,
        failed=task["state"] in FAILED_STATES,
        retryable=task["state"] in FINISHED_STATES,
        cancellable=task["state"] in CANCELLABLE_STATES,
        timeline_url=task_url(engine, task_id, "/timeline"),
    )


def _awaited_run(engine: str, task_id: str, actions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The new run of a done retry whose first event has not reached the brain yet (the agent
    answers the retry before the run's own events arrive): shown as awaited, not as missing."""
    for action in actions:
        if (action["engine"], action["new_task_id"], action["status"]) == (engine, task_id, "done"):
            return dict.fromkeys(_AWAITED_UNKNOWNS.split()) | {
                "task_id": task_id,
                "name": action["task"],
                "state": AWAITED,
                "engine": engine,
                "app": action["app"],
                "queue": action["queue"],
                "retry_of": action["task_id"],
            }
    return None


async def _task_events(request: Request, engine: str, task_id: str) -> list[dict[str, Any]]:
    answer = await call(
        request, "GET", "/tasks/{task_id}/events", {"task_id": task_id}, query={"engine": engine}
    )
    events: list[dict[str, Any]] = answer.data["events"] if answer.ok else []
    return events


@fragment
async def task_timeline(request: Request, viewer: Viewer) -> Response:
    engine = request.path_params["engine"]
    task_id = request.path_params["task_id"]
    events = await _task_events(request, engine, task_id)
    return render(request, "timeline.html", viewer, events=events)


def _task_action(kind: str) -> Page:
    async def act(request: Request, viewer: Viewer) -> Response:
        form = await _form(request)
        task_id, engine = form.get("task_id", ""), form.get("engine", "")
        body: dict[str, Any] = {"engine": engine}
        if form.get("app"):
            body["app"] = form["app"]
        if kind == "cancel" and form.get("terminate"):
            body["terminate"] = True
        route = ("POST", f"/tasks/{{task_id}}/{kind}", {"task_id": task_id})
        done = await mutate(request, viewer, route, body=body, form=form)
        if isinstance(done, Response):
            return done
        return RedirectResponse(task_url(engine, task_id, f"?done={kind}"), status_code=303)

    act.__name__ = f"task_{kind}"
    return act


task_retry = page(_task_action("retry"))
task_cancel = page(_task_action("cancel"))


@page
async def tasks_bulk(request: Request, viewer: Viewer) -> Response:
    """Retry or cancel every task the tasks page's filters match: first the count (the API's
    dry run), then, once confirmed, the bulk action itself, followed on its own page."""
    form = await _form(request)
    kind = form.get("action", "")
    filters = forms.task_filters(form)
    back = "/tasks?" + urlencode(filters)
    try:
        if kind not in BULK_ACTIONS:
            raise forms.FormError(f"action {kind!r} is not retry or cancel")
        body = forms.bulk_body(form)
    except forms.FormError as exc:
        return render(request, "error.html", viewer, 400, message=str(exc), back=back)
    confirmed = form.get("confirmed") == "1"
    route: tuple[str, str, dict[str, str]] = ("POST", f"/tasks/{kind}", {})
    body["dry_run"] = not confirmed
    answer = await mutate(request, viewer, route, body=body, form=form)
    if isinstance(answer, Response):
        return answer
    if not confirmed:
        return render(
            request, "bulk_confirm.html", viewer, kind=kind, result=answer.data, filters=filters,
            back=back,
        )  # fmt: skip
    return RedirectResponse(f"/bulk/{quote(answer.data['bulk_id'], safe='')}", status_code=303)


async def _bulk(request: Request) -> dict[str, Any]:
    bulk_id = request.path_params["bulk_id"]
    answer = await call(request, "GET", "/bulk/{bulk_id}", {"bulk_id": bulk_id})
    if not answer.ok:
        raise Unavailable(answer.status, answer.error)
    result: dict[str, Any] = answer.data
    return result


@page
async def bulk_page(request: Request, viewer: Viewer) -> Response:
    result = await _bulk(request)
    counts_url = f"/bulk/{quote(result['bulk_id'], safe='')}/counts"
    return render(request, "bulk.html", viewer, result=result, counts_url=counts_url)


@fragment
async def bulk_counts(request: Request, viewer: Viewer) -> Response:
    return render(request, "bulk_counts.html", viewer, result=await _bulk(request))


# -- schedules ----------------------------------------------------------------------------------


@page
async def schedules(request: Request, viewer: Viewer) -> Response:
    items = (await call(request, "GET", "/schedules")).listed("schedules")
    observed = (await call(request, "GET", "/observed")).listed("observed")
    return render(request, "schedules.html", viewer, schedules=items, observed=observed)


def _preview(form: dict[str, str]) -> dict[str, Any]:
    """The form's schedule and its next fire times, with the CLI's own preview code."""
    from z4j_core.cli.schedules import preview

    try:
        spec = forms.spec_from_form(form)
        schedule, rows = preview(spec, datetime.now(timezone.utc), PREVIEW_COUNT)
    except (forms.FormError, ScheduleError) as exc:
        return {"error": str(exc), "rows": [], "describe": ""}
    return {
        "error": None,
        "rows": rows,
        "describe": schedule.describe(),
        "zone": str(getattr(schedule.timezone, "key", schedule.timezone)),
    }


@fragment
async def schedule_preview(request: Request, viewer: Viewer) -> Response:
    form = dict(request.query_params.items())
    # Up to ~0.1 s of cron search per keystroke: off the event loop.
    preview = await asyncio.to_thread(_preview, form)
    return render(request, "preview.html", viewer, preview=preview)


async def _schedule_form(
    request: Request,
    viewer: Viewer,
    form: dict[str, str],
    *,
    schedule: dict[str, Any] | None,
    status: int = 200,
    error: str | None = None,
) -> Response:
    return render(
        request,
        "schedule_form.html",
        viewer,
        status,
        form=form,
        schedule=schedule,
        preview=_preview(form),
        kinds=forms.KINDS,
        error=error,
    )


@page
async def schedule_new(request: Request, viewer: Viewer) -> Response:
    form = {"kind": "cron", "expression": "*/5 * * * *", "timezone": "UTC"}
    form.update(dict(request.query_params.items()))
    return await _schedule_form(request, viewer, form, schedule=None)


@page
async def schedule_create(request: Request, viewer: Viewer) -> Response:
    form = await _form(request)
    try:
        body = forms.schedule_body(form, creating=True)
    except forms.FormError as exc:
        return await _schedule_form(
            request, viewer, form, schedule=None, status=400, error=str(exc)
        )
    answer = await call(request, "POST", "/schedules", body=body, csrf=form.get("csrf", ""))
    if not answer.ok:
        return await _schedule_form(
            request, viewer, form, schedule=None, status=answer.status, error=answer.error
        )
    return RedirectResponse(f"/schedule/{answer.data['id']}", status_code=303)


@page
async def schedule_detail(request: Request, viewer: Viewer) -> Response:
    ref = request.path_params["ref"]
    answer = await call(request, "GET", "/schedules/{ref}", {"ref": ref})
    if not answer.ok:
        return _refused(request, viewer, answer)
    history = await call(
        request, "GET", "/schedules/{ref}/fires", {"ref": ref}, query={"limit": 50}
    )
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return render(
        request,
        "schedule.html",
        viewer,
        schedule=answer.data,
        fires=history.data["fires"] if history.ok else [],
        backfill_from=(now - timedelta(hours=1)).isoformat(),
        backfill_to=now.isoformat(),
    )


@page
async def schedule_edit(request: Request, viewer: Viewer) -> Response:
    ref = request.path_params["ref"]
    answer = await call(request, "GET", "/schedules/{ref}", {"ref": ref})
    if not answer.ok:
        return _refused(request, viewer, answer)
    item = answer.data
    import json

    form = {
        **forms.form_from_spec(item["schedule"]),
        "name": item["name"],
        "task": item["task"],
        "engine": item["engine"],
        "app": item["app"],
        "description": item["description"],
        "args": json.dumps(item["args"]),
        "kwargs": json.dumps(item["kwargs"]),
    }
    return await _schedule_form(request, viewer, form, schedule=item)


@page
async def schedule_save(request: Request, viewer: Viewer) -> Response:
    ref = request.path_params["ref"]
    form = await _form(request)
    current = await call(request, "GET", "/schedules/{ref}", {"ref": ref})
    if not current.ok:
        return _refused(request, viewer, current)
    try:
        body = forms.schedule_body(form, creating=False)
    except forms.FormError as exc:
        return await _schedule_form(
            request, viewer, form, schedule=current.data, status=400, error=str(exc)
        )
    answer = await call(
        request, "PATCH", "/schedules/{ref}", {"ref": ref}, body=body, csrf=form.get("csrf", "")
    )
    if not answer.ok:
        return await _schedule_form(
            request, viewer, form, schedule=current.data, status=answer.status, error=answer.error
        )
    return RedirectResponse(f"/schedule/{answer.data['id']}?done=edit", status_code=303)


def _schedule_action(kind: str) -> Page:
    async def act(request: Request, viewer: Viewer) -> Response:
        ref = request.path_params["ref"]
        form = await _form(request)
        body: dict[str, Any] | None = None
        method, template = "POST", f"/schedules/{{ref}}/{kind}"
        if kind == "pause":
            body = {"note": form.get("note") or None}
        elif kind == "backfill":
            body = {
                "from": form.get("from", ""),
                "to": form.get("to", ""),
                "dry_run": form.get("dry_run") is not None,
            }
        elif kind == "delete":
            method, template = "DELETE", "/schedules/{ref}"
        done = await mutate(request, viewer, (method, template, {"ref": ref}), body=body, form=form)
        if isinstance(done, Response):
            return done
        if kind == "backfill":
            return render(request, "backfill.html", viewer, result=done.data, ref=ref)
        if kind == "delete":
            return RedirectResponse("/schedules?done=delete", status_code=303)
        target = form.get("back") or f"/schedule/{ref}"
        return RedirectResponse(_safe_next(target) + f"?done={kind}", status_code=303)

    act.__name__ = f"schedule_{kind}"
    return act


schedule_pause = page(_schedule_action("pause"))
schedule_resume = page(_schedule_action("resume"))
schedule_trigger = page(_schedule_action("trigger"))
schedule_backfill = page(_schedule_action("backfill"))
schedule_delete = page(_schedule_action("delete"))


# -- audit, queues, agents ----------------------------------------------------------------------


@page
async def audit(request: Request, viewer: Viewer) -> Response:
    if not viewer.may("GET", "/audit"):
        return render(
            request,
            "error.html",
            viewer,
            403,
            back="/",
            message="the audit log covers every app: it needs the scope '*'",
        )
    brain: Brain = request.app.state.brain
    kept = _verdicts.get(brain)
    if kept is None or time.monotonic() - kept[0] > AUDIT_VERIFY_SECONDS:
        answer = await call(request, "GET", "/audit/verify")  # walks the whole chain
        if not answer.ok:
            return _refused(request, viewer, answer)
        kept = _verdicts[brain] = (time.monotonic(), answer.data)
    verdict = kept[1]
    # The newest rows: from a little before the verified count (rows written since the verdict
    # was kept come too); with a broken chain, the rows around its first bad row.
    after = max(0, int(verdict.get("count") or 0) - AUDIT_ROWS)
    answer = await call(request, "GET", "/audit", query={"after": after, "limit": 1000})
    if not answer.ok:
        return _refused(request, viewer, answer)
    found = answer.data["audit"]
    rows = found[-AUDIT_ROWS:] if verdict.get("ok") else found[: AUDIT_ROWS + 10]
    entries = [
        {**row, "change": audit_change(row["before"], row["after"])} for row in reversed(rows)
    ]
    return render(request, "audit.html", viewer, verdict=verdict, rows=entries)


#: Audit rows the page shows, newest first.
AUDIT_ROWS: Final = 100
#: How long a chain verdict is reused (the walk reads every row; rows only grow).
AUDIT_VERIFY_SECONDS: Final = 60.0
_verdicts: weakref.WeakKeyDictionary[Brain, tuple[float, dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


#: Fields every schedule change moves; the audit page leaves them out of what changed.
BOOKKEEPING: Final = frozenset({"updated_at", "updated_by", "version", "cursor", "skipped_through"})
#: Fields of a creation that say nothing the row's own columns do not (who, when, its state).
CREATED: Final = frozenset({"created_at", "created_by", "state", "broken_at"})


def audit_change(before: Any, after: Any) -> dict[str, Any]:
    """What an audit row changed: for an edit of an object, the fields whose values differ
    (bookkeeping left out) as ``{field: [before, after]}``; for a creation, its ``after``
    without what is empty or said elsewhere."""
    if isinstance(before, dict) and isinstance(after, dict):
        return {
            key: [before.get(key), after.get(key)]
            for key in sorted(set(before) | set(after))
            if key not in BOOKKEEPING and before.get(key) != after.get(key)
        }
    if isinstance(after, dict):  # a creation: what it was made with
        return {
            key: value
            for key, value in after.items()
            if key not in BOOKKEEPING | CREATED and value not in (None, "", [], {})
        }
    return {} if after is None else {"after": after}


@page
async def queues(request: Request, viewer: Viewer) -> Response:
    items = (await call(request, "GET", "/queues")).listed("queues")
    return render(request, "queues.html", viewer, queues=items)


@page
async def queue_purge(request: Request, viewer: Viewer) -> Response:
    form = await _form(request)
    if form.get("confirm") is None:
        return render(
            request,
            "error.html",
            viewer,
            400,
            back="/queues",
            message="tick the confirmation box to purge a queue",
        )
    body = {"engine": form.get("engine", ""), "app": form.get("app") or None}
    route = ("POST", "/queues/{queue}/purge", {"queue": form.get("queue", "")})
    done = await mutate(request, viewer, route, body=body, form=form)
    if isinstance(done, Response):
        return done
    return render(request, "action_done.html", viewer, action=done.data, back="/queues")


@page
async def agents(request: Request, viewer: Viewer) -> Response:
    items = (await call(request, "GET", "/agents")).listed("agents")
    return render(request, "agents.html", viewer, agents=items)


# -- live ---------------------------------------------------------------------------------------


class _Position:
    """The newest event position, read at most once per poll for all of a brain's streams."""

    def __init__(self) -> None:
        self.streams = 0
        self._value: int | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def latest(self, brain: Brain) -> int:
        async with self._lock:
            if self._value is None or time.monotonic() - self._read_at >= LIVE_POLL_SECONDS / 2:
                self._value = int(await brain.read(lambda s: s.latest_position()))
                self._read_at = time.monotonic()
            return self._value


_positions: weakref.WeakKeyDictionary[Brain, _Position] = weakref.WeakKeyDictionary()


@fragment
async def live(request: Request, viewer: Viewer) -> Response:
    """Server-Sent Events: ``changed`` (with the newest event position) whenever events were
    stored; the page then fetches its own fragment again (as the viewer, scoped). Without a
    session: 401, on which a browser's ``EventSource`` stops reconnecting."""
    brain: Brain = request.app.state.brain
    position = _positions.setdefault(brain, _Position())
    if position.streams >= MAX_LIVE_STREAMS:
        return Response(
            "too many live streams open on this brain; try again soon",
            status_code=503,
            media_type="text/plain",
            headers={"retry-after": "30"},
        )

    async def stream() -> Any:
        position.streams += 1
        try:
            began = quiet_since = time.monotonic()
            last = await position.latest(brain)
            yield "retry: 1000\n\n"
            while time.monotonic() - began < LIVE_MAX_SECONDS and not brain.stopping.is_set():
                if await request.is_disconnected():
                    return
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(brain.events_changed.wait(), LIVE_POLL_SECONDS)
                if brain.stopping.is_set():  # the browser reconnects to whichever brain serves next
                    return
                latest = await position.latest(brain)
                if latest != last:
                    last = latest
                    quiet_since = time.monotonic()
                    yield f"event: changed\ndata: {latest}\n\n"
                elif time.monotonic() - quiet_since > LIVE_KEEPALIVE_SECONDS:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
        finally:
            position.streams -= 1

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


# -- adopting an observed native schedule ------------------------------------------------------


async def _adoption(request: Request, fields: dict[str, str]) -> dict[str, Any]:
    """The adoption of the observed schedule ``fields`` name, converted and compared as
    `z4j schedules adopt` does (its own functions); ``error`` says why it cannot be."""
    from z4j_core.cli import CLIError
    from z4j_core.cli.schedule_adopt import find_observed
    from z4j_core.scheduling import schedule_from_dict
    from z4j_core.scheduling.adopt import NotAdoptable, adopt, compare, mismatches

    inventory = (await call(request, "GET", "/inventory")).listed("inventory")
    found: dict[str, Any] = {"fields": fields, "error": None, "observed": None}
    try:
        observed = find_observed(
            inventory,
            fields.get("observed", ""),
            fields.get("engine"),
            fields.get("app"),
            fields.get("source"),
        )
        found["observed"] = observed
        now = datetime.now(timezone.utc)
        adoption = adopt(observed, now, tz=fields.get("tz") or None)
    except (CLIError, NotAdoptable) as exc:
        found["error"] = str(exc)
        return found
    rows = compare(adoption, observed.get("next_runs") or [], now)
    differences = list(adoption.differences)
    differing = mismatches(rows)
    if differing:
        differences.append(
            f"{len(differing)} of the next {len(rows)} fire times differ from "
            f"{observed['source']}'s"
        )
    found.update(
        adoption=adoption,
        rows=rows,
        differences=differences,
        describe=schedule_from_dict(adoption.schedule).describe(),
    )
    return found


@page
async def adopt_page(request: Request, viewer: Viewer) -> Response:
    from z4j_core.scheduling.adopt import schedule_name

    fields = dict(request.query_params.items())
    found = await _adoption(request, fields)
    fields.setdefault("name", schedule_name(fields.get("observed", "")))
    return render(request, "adopt.html", viewer, 400 if found["error"] else 200, **found)


@page
async def adopt_post(request: Request, viewer: Viewer) -> Response:
    form = await _form(request)
    found = await _adoption(request, form)
    if found["error"]:
        return render(request, "adopt.html", viewer, 400, **found)
    if found["differences"] and form.get("accept") is None:
        found["error"] = "it cannot be adopted exactly: tick 'accept the differences' to adopt it"
        return render(request, "adopt.html", viewer, 400, **found)
    observed, adoption = found["observed"], found["adoption"]
    extra = {"enabled": False} if form.get("paused") is not None else {}
    body = adoption.body(form.get("name", ""), observed["engine"], observed["app"], **extra)
    answer = await call(request, "POST", "/schedules", body=body, csrf=form.get("csrf", ""))
    if not answer.ok:
        found["error"] = answer.error
        return render(request, "adopt.html", viewer, answer.status, **found)
    return RedirectResponse(f"/schedule/{answer.data['id']}?done=adopt", status_code=303)
