"""The web console over HTTP, without a browser (tests/console drives one): what a page needs
(a session, else the login page), the security headers, the form posts refused by the API's own
checks (CSRF token, origin, role), hostile values escaped; and its pure parts (charts, forms)."""

from __future__ import annotations

import contextlib
import html
import http.client
import http.cookiejar
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from brain_helpers import ADMIN, RunningBrain, serving

from z4j_brain.bodylimit import MAX_REQUEST_BYTES
from z4j_brain.console import CONTENT_SECURITY_POLICY, charts, forms, views
from z4j_brain.console.calls import Answer, Unavailable
from z4j_brain.store import Store
from z4j_core.wire.frames import Event, LifecycleKind

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """Cookies kept, redirects not followed: each answer as it came."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def go(
        self, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        data = None if form is None else urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=30) as answer:
                return answer.status, dict(answer.headers), answer.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers), exc.read().decode()

    def log_in(self, token: str) -> str:
        status, headers, _ = self.go("/login", {"token": token, "next": "/"}, {"Origin": self.base})
        assert status == 303 and "z4j_session=" in headers["set-cookie"], (status, headers)
        _, _, page = self.go("/tasks")
        marker = 'name="csrf" value="'
        return page.split(marker, 1)[1].split('"', 1)[0]


@pytest.fixture
def brain(tmp_path: Path) -> Iterator[RunningBrain]:
    with serving(tmp_path / "brain.sqlite3") as running:
        yield running


def test_every_page_needs_a_session_and_carries_the_headers(brain: RunningBrain) -> None:
    browser = Browser(brain.url)
    status, headers, _ = browser.go("/schedules")
    assert status == 303 and headers["location"] == "/login?next=%2Fschedules"
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    # What the script fetches answers 401, never the login page (it would land in the page).
    for path in (
        "/live",
        "/tasks/rows",
        "/bulk/b1/counts",
        "/schedules/preview?kind=cron&expression=*+*+*+*+*",
    ):
        assert browser.go(path)[0] == 401, path
    status, headers, body = browser.go("/login")
    assert status == 200 and 'for="token"' in body and "<script>" not in body
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    status, _, body = browser.go("/login", {"token": "z4j_op_wrong"}, {"Origin": brain.url})
    assert status == 401 and "wrong, revoked or expired" in body
    browser.log_in(ADMIN)
    for path in (
        "/",
        "/tasks",
        "/tasks/rows",
        "/schedules",
        "/schedules/new",
        "/queues",
        "/agents",
        "/audit",
        "/static/console.js",
    ):
        status, headers, _ = browser.go(path)
        assert status == 200, path
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
    # The API keeps its own headers (no CSP on JSON).
    assert "content-security-policy" not in {k.lower() for k in browser.go("/api/v1/session")[1]}


def _store_tasks(
    brain: RunningBrain, ids: list[str], kind: LifecycleKind, engine: str, name: str
) -> None:
    """One event of ``kind`` per task id, stored as an agent of app `shop` would report it."""
    events = [
        Event(seq=i, kind=kind, at=float(i), engine=engine, task_id=task_id, task_name=name)
        for i, task_id in enumerate(ids)
    ]
    store = Store.open(brain.database)
    try:
        with store.transaction():
            store.store_events("agent-1", "shop", events, time.time())
    finally:
        store.close()


def test_the_tasks_page_pages_by_the_apis_cursor(brain: RunningBrain) -> None:
    count = views.PAGE_SIZE + 7
    ids = [f"page-task-{i:03d}" for i in range(count)]
    _store_tasks(brain, ids, LifecycleKind.SUCCEEDED, "huey", "shop.tasks.ping")
    browser = Browser(brain.url)
    browser.log_in(ADMIN)
    seen: list[str] = []
    url: str | None = "/tasks?window=1h"
    while url is not None:
        status, _, body = browser.go(url)
        assert status == 200, body
        seen += re.findall(r"page-task-\d{3}", body)
        found = re.search(r'href="(/tasks\?[^"]*cursor=[^"]+)"', body)
        url = html.unescape(found[1]) if found else None
    assert sorted(set(seen)) == [f"page-task-{i:03d}" for i in range(count)]
    assert browser.go("/tasks?cursor=not-a-cursor")[0] == 400


def test_a_task_id_an_agent_chose_stays_one_path_part(brain: RunningBrain) -> None:
    # `\\..` would climb out of /task/ in a browser (it reads `\\` as `/`): every part is
    # quoted whole, and a task id holding `/` still opens.
    odd = ["..\\..\\..\\api\\v1\\tasks?x", "queue/job-1"]
    _store_tasks(brain, odd, LifecycleKind.FAILED, "rq", "shop.tasks.odd")
    browser = Browser(brain.url)
    browser.log_in(ADMIN)
    _, _, body = browser.go("/tasks")
    hrefs = re.findall(r'href="(/task/[^"]*)"', body)
    assert "/task/rq/..%5C..%5C..%5Capi%5Cv1%5Ctasks%3Fx" in hrefs, hrefs
    assert "/task/rq/queue%2Fjob-1" in hrefs, hrefs
    for href in hrefs:
        status, _, page = browser.go(href)
        assert status == 200 and "shop.tasks.odd" in page, (href, status)
        timeline = re.search(r'data-live="([^"]*)"', page)
        assert timeline and timeline[1] == html.escape(href + "/timeline", quote=True), page
        status, headers, _ = browser.go(html.unescape(timeline[1]))
        assert status == 200 and headers.get("x-z4j-fragment") == "1"
    # The API never marks its answers as fragments: the script puts none of them in a page.
    assert "x-z4j-fragment" not in {k.lower() for k in browser.go("/api/v1/tasks")[1]}


def test_a_stopping_brain_ends_its_live_streams_and_long_polls(tmp_path: Path) -> None:
    # An open console tab (a live stream) and an `events tail` (a long poll) must not hold a
    # stopping brain: both answers end, whole, once the server is told to exit; uvicorn would
    # otherwise wait its graceful timeout for them, then cut them off mid-answer.
    with serving(tmp_path / "brain.sqlite3") as brain:
        browser = Browser(brain.url)
        browser.log_in(ADMIN)
        (cookie,) = [f"{c.name}={c.value}" for c in browser.jar if c.name == "z4j_session"]
        host, port = brain.url.removeprefix("http://").split(":")
        stream = http.client.HTTPConnection(host, int(port), timeout=30)
        stream.request("GET", "/live", headers={"Cookie": cookie})
        live = stream.getresponse()
        assert live.status == 200 and live.readline() == b"retry: 1000\n"
        poll = http.client.HTTPConnection(host, int(port), timeout=30)
        poll.request(
            "GET", "/api/v1/events?after=0&wait=25", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        stopper = threading.Thread(target=brain.thread.stop)
        time.sleep(0.5)  # the long poll is waiting
        stopper.start()
        rest = live.read()  # the stream's end, not a connection cut (IncompleteRead)
        answer = poll.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["events"] == []
        stopper.join(30)
        stream.close()
        poll.close()
        assert not brain.thread._thread.is_alive() and b"event: changed" not in rest


def test_logging_in_again_ends_the_session_the_browser_held(tmp_path: Path) -> None:
    # Secure, as behind a proxy that terminates TLS: a browser sends such a cookie only over
    # https, so this test carries it by hand over the plain HTTP the brain serves here.
    with serving(tmp_path / "brain.sqlite3", Z4J_SECURE_COOKIES="1") as brain:
        browser = Browser(brain.url)

        def log_in(cookie: str | None) -> str:
            headers = {"Origin": brain.url, **({"Cookie": cookie} if cookie else {})}
            status, answer, _ = browser.go("/login", {"token": ADMIN, "next": "/"}, headers)
            assert status == 303 and answer["set-cookie"].endswith("; Secure"), answer
            return answer["set-cookie"].split(";", 1)[0]

        first = log_in(None)
        second = log_in(first)
        assert browser.go("/agents", headers={"Cookie": first})[0] == 303  # ended: log in
        assert browser.go("/agents", headers={"Cookie": second})[0] == 200


def test_a_retrys_new_run_opens_before_its_first_event(brain: RunningBrain) -> None:
    # The agent answers a retry before the new run's own events reach the brain: the link in
    # "Actions taken" opens the run as awaited (and its timeline fills in live), never a 404.
    _store_tasks(brain, ["old-run"], LifecycleKind.FAILED, "huey", "shop.tasks.flaky")
    store = Store.open(brain.database)
    try:
        with store.transaction():
            store.insert_action(
                action_id="act-1", kind="retry", engine="huey", app="shop", task_id="old-run",
                task="shop.tasks.flaky", queue="default", options={}, status="pending",
                reason="", agent_instance=None, bulk_id=None, requested_by="admin",
                requested_from="test", requested_at=time.time(),
            )  # fmt: skip
            store.answer_action(
                "act-1", status="done", reason="", new_task_id="new-run", count=None,
                now=time.time(),
            )  # fmt: skip
    finally:
        store.close()
    browser = Browser(brain.url)
    browser.log_in(ADMIN)
    status, _, page = browser.go("/task/huey/new-run")
    assert status == 200, page
    assert "shop.tasks.flaky" in page and views.AWAITED in page
    assert 'href="/task/huey/old-run"' in page and "Retry of" in page
    assert 'data-live="/task/huey/new-run/timeline"' in page
    assert browser.go("/task/rq/new-run")[0] == 404  # the run is huey's, not any engine's
    assert browser.go("/task/huey/never-seen")[0] == 404


def test_a_form_posted_after_its_session_ended_logs_in_back_to_its_page(
    brain: RunningBrain,
) -> None:
    browser = Browser(brain.url)
    page = brain.url + "/schedule/nightly"
    status, headers, _ = browser.go(
        "/schedule/nightly/pause", {"note": "x"}, {"Origin": brain.url, "Referer": page}
    )
    assert status == 303 and headers["location"] == "/login?next=%2Fschedule%2Fnightly"
    elsewhere = {"Origin": brain.url, "Referer": "https://evil.example/x"}
    status, headers, _ = browser.go("/schedule/nightly/pause", {"note": "x"}, elsewhere)
    assert status == 303 and headers["location"] == "/login?next=%2F"


def test_an_oversized_body_is_refused_before_it_is_read(brain: RunningBrain) -> None:
    host, port = brain.url.removeprefix("http://").split(":")
    # The login form (open to anyone) by its declared length; an API route (which reads the
    # whole body once the caller is known) streamed with no length.
    for path, declared in (("/login", str(MAX_REQUEST_BYTES + 1)), ("/api/v1/schedules", None)):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            head = f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n"
            head += "Content-Type: application/x-www-form-urlencoded\r\n"
            head += (
                f"Content-Length: {declared}\r\n\r\n"
                if declared
                else "Transfer-Encoding: chunked\r\n\r\n"
            )
            sock.sendall(head.encode())
            if declared is None:  # streamed: refused once past the cap, not at its end
                chunk = b"x" * (1 << 20)
                with contextlib.suppress(OSError):
                    for _ in range(MAX_REQUEST_BYTES // len(chunk) + 2):
                        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            answer = sock.recv(4096).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 413"), answer[:200]


def test_a_rate_limited_session_check_keeps_the_session(brain: RunningBrain) -> None:
    browser = Browser(brain.url)
    browser.log_in(ADMIN)
    for _ in range(200):  # bad tokens from this address until the brain says 429
        status, _ = brain.api("GET", "/api/v1/tasks", token="z4j_op_wrong")
        if status == 429:
            break
    assert status == 429
    status, headers, body = browser.go("/tasks")
    assert status == 429 and "too many bad tokens" in body, (status, body[:300])
    assert "set-cookie" not in {k.lower() for k in headers}  # not logged out


def test_form_posts_meet_the_apis_own_checks(brain: RunningBrain) -> None:
    status, viewer = brain.api("POST", "/api/v1/operators", {"name": "eve", "role": "viewer"})
    assert status == 201
    admin = Browser(brain.url)
    csrf = admin.log_in(ADMIN)
    same = {"Origin": brain.url}
    # No CSRF token, another origin, a null origin that is not our page: refused.
    assert admin.go("/schedule/nope/pause", {"note": "x"}, same)[0] == 403
    assert (
        admin.go("/schedule/nope/pause", {"csrf": csrf}, {"Origin": "https://evil.example"})[0]
        == 403
    )
    assert admin.go("/schedule/nope/pause", {"csrf": csrf}, {"Origin": "null"})[0] == 403
    nulled = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}  # not ours: our pages send theirs
    assert admin.go("/schedule/nope/pause", {"csrf": csrf}, nulled)[0] == 403
    # Our own page's form: the operation runs, and answers its own 404.
    status, _, body = admin.go("/schedule/nope/pause", {"csrf": csrf}, same)
    assert status == 404 and "no schedule named" in body
    form = {
        "csrf": csrf,
        "name": "nightly",
        "task": HOSTILE,
        "engine": "huey",
        "app": "shop",
        "kind": "cron",
        "expression": "0 4 * * *",
        "timezone": "UTC",
        "description": HOSTILE,
        "force": "on",
    }
    status, headers, _ = admin.go("/schedules/new", form, same)
    assert status == 303, headers
    page = admin.go(headers["location"])[2]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "<img src=x" not in page
    # Edited through the form: the same PATCH, audited.
    edit = {**form, "expression": "30 5 * * *", "description": "nightly export"}
    status, headers2, _ = admin.go(headers["location"] + "/edit", edit, same)
    assert status == 303 and headers2["location"].endswith("?done=edit")
    edited = brain.api("GET", "/api/v1/schedules/nightly")[1]
    assert edited["schedule"]["expression"] == "30 5 * * *" and edited["version"] == 2
    # A viewer is offered no action, and its forged post is refused by the operation (403).
    watcher = Browser(brain.url)
    watcher_csrf = watcher.log_in(viewer["token"])
    page = watcher.go(headers["location"])[2]
    assert "/pause" not in page and "/trigger" not in page
    status, _, body = watcher.go(headers["location"] + "/pause", {"csrf": watcher_csrf}, same)
    assert status == 403 and "has role viewer; this needs operator" in body
    assert brain.api("GET", "/api/v1/schedules/nightly")[1]["enabled"] is True
    status, _, body = watcher.go("/schedules/new", {**form, "csrf": watcher_csrf}, same)
    assert status == 403
    # Bulk actions: a state is needed, the action is retry or cancel, a viewer may not.
    bulk = {"csrf": csrf, "action": "retry", "app": "shop"}
    status, _, body = admin.go("/tasks/bulk", bulk, same)
    assert status == 400 and "choose the state of the tasks to act on" in body
    status, _, body = admin.go("/tasks/bulk", {**bulk, "action": "purge", "state": "failed"}, same)
    assert status == 400 and "is not retry or cancel" in body
    status, _, body = admin.go("/tasks/bulk", {**bulk, "state": "failed"}, same)
    assert status == 200 and "No task matches: nothing to retry." in body  # counted, not sent
    watched = {**bulk, "state": "failed", "csrf": watcher_csrf, "confirmed": "1"}
    assert watcher.go("/tasks/bulk", watched, same)[0] == 403
    # The audit log has the console's change under the operator's name.
    audit = brain.api("GET", "/api/v1/audit")[1]["audit"]
    assert [(r["actor"], r["action"]) for r in audit][-2:] == [
        ("admin", "schedule.create"),
        ("admin", "schedule.edit"),
    ]


def test_the_preview_is_the_clis(brain: RunningBrain) -> None:
    browser = Browser(brain.url)
    browser.log_in(ADMIN)
    query = urllib.parse.urlencode(
        {"kind": "cron", "expression": "0 9 * * 1-5", "timezone": "Europe/Berlin"}
    )
    status, _, body = browser.go(f"/schedules/preview?{query}")
    assert status == 200 and body.count("T09:00:00+0") == 5
    query = urllib.parse.urlencode({"kind": "cron", "expression": "0 25 * * *"})
    assert 'class="error"' in browser.go(f"/schedules/preview?{query}")[2]


def test_the_overview_figures_on_either_store(store: Store) -> None:
    now = 100_000.0
    events = [
        Event(
            seq=i,
            kind=LifecycleKind.FAILED if i % 4 == 0 else LifecycleKind.SUCCEEDED,
            at=now,
            engine="rq" if i % 2 else "huey",
            task_id=f"t{i}",
            task_name="job",
        )
        for i in range(8)
    ]
    with store.transaction():
        store.store_events("a1", "shop", events[:4], now - 400)  # bucket 0 of 300 s
        store.store_events("a1", "shop", events[4:], now - 100)  # bucket 1
        store.store_events(
            "a2",
            "other",
            [
                Event(
                    seq=0,
                    kind=LifecycleKind.SUCCEEDED,
                    at=now,
                    engine="rq",
                    task_id="x",
                    task_name="job",
                )
            ],
            now - 100,
        )
    counted = {
        (r["engine"], r["bucket"], r["state"]): r["count"]
        for r in store.task_outcomes(now - 500, 300, ["shop"])
    }
    assert counted == {
        ("huey", 0, "failed"): 1,
        ("huey", 0, "succeeded"): 1,
        ("rq", 0, "succeeded"): 2,
        ("huey", 1, "failed"): 1,
        ("huey", 1, "succeeded"): 1,
        ("rq", 1, "succeeded"): 2,
    }
    assert sum(r["count"] for r in store.task_outcomes(now - 500, 300)) == 9
    assert store.task_outcomes(now - 500, 300, []) == []
    assert store.fire_timeliness(now - 500, 5.0) == {
        "on_time": 0,
        "late": 0,
        "missed": 0,
        "waiting": 0,
    }


@pytest.mark.parametrize(
    ("given", "safe"),
    [("/tasks?state=failed", "/tasks?state=failed"), ("//evil.example/", "/"),
     ("https://evil.example/", "/"), ("/\\evil.example", "/"), ("/login?next=/", "/"), (None, "/")],
)  # fmt: skip
def test_after_login_only_a_page_of_this_site(given: str | None, safe: str) -> None:
    assert views._safe_next(given) == safe


def test_the_audit_page_shows_what_changed() -> None:
    before = {"enabled": True, "pause_note": "", "version": 1, "name": "n"}
    after = {"enabled": False, "pause_note": "db", "version": 2, "name": "n"}
    assert views.audit_change(before, after) == {
        "enabled": [True, False],
        "pause_note": ["", "db"],
    }
    assert views.audit_change(None, {"name": "t", "labels": {}, "version": 1}) == {"name": "t"}
    assert views.audit_change({"name": "t"}, None) == {}


def test_a_listing_the_brain_could_not_answer_is_said_not_a_500() -> None:
    assert Answer(200, {"agents": [{"a": 1}]}, {}).listed("agents") == [{"a": 1}]
    with pytest.raises(Unavailable, match="the store is unreachable") as raised:
        Answer(503, {"error": "the store is unreachable"}, {}).listed("agents")
    assert raised.value.status == 503


def test_charts_escape_what_agents_name() -> None:
    svg = charts.bars(HOSTILE, [1, 2, 0], [0, 1, 3], 5)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count("<rect") == 5  # a bar per bucket with tasks (3), failures drawn over (2)
    share = charts.share(HOSTILE, {"on_time": 3, "late": 1}, ("on_time", "late", "missed"))
    assert "<script>" not in share and share.count("<rect") == 2


@pytest.mark.parametrize(
    ("form", "spec"),
    [
        (
            {"kind": "cron", "expression": "*/5 * * * *", "timezone": "UTC"},
            {"kind": "cron", "expression": "*/5 * * * *", "timezone": "UTC"},
        ),
        ({"kind": "interval", "every": "30s"}, {"kind": "interval", "every": "30s"}),
        (
            {"kind": "oneshot", "at": "2030-01-01T09:00:00+00:00"},
            {"kind": "oneshot", "at": "2030-01-01T09:00:00+00:00", "timezone": "UTC"},
        ),
        (
            {"kind": "solar", "event": "sunset", "latitude": "52.5", "longitude": "13.4"},
            {"kind": "solar", "event": "sunset", "latitude": 52.5, "longitude": 13.4},
        ),
    ],
)
def test_a_form_spells_a_spec_as_the_cli_does(form: dict[str, str], spec: dict[str, Any]) -> None:
    assert forms.spec_from_form(form) == spec
    assert forms.spec_from_form(forms.form_from_spec(spec)) == spec


def test_form_mistakes_are_named() -> None:
    with pytest.raises(forms.FormError, match="cron expression"):
        forms.spec_from_form({"kind": "cron"})
    with pytest.raises(forms.FormError, match="latitude must be a number"):
        forms.spec_from_form({"kind": "solar", "latitude": "north"})
    with pytest.raises(forms.FormError, match="args is not valid JSON"):
        forms.schedule_body(
            {"expression": "* * * * *", "name": "n", "task": "t", "engine": "huey", "args": "[1,"},
            creating=True,
        )
    with pytest.raises(forms.FormError, match="window"):
        forms.window_seconds("3w")
