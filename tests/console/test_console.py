"""The web console in a real browser, the way a person uses it (by labels and roles): log in,
watch a task run through a real Huey worker appear without a reload, open it, retry a failed
one, cancel a scheduled one, backfill a schedule (dry run first), pause and resume a schedule,
preview a cron while typing; a viewer is offered no action and is refused (403) when it forges
one; hostile task names, arguments and exceptions stay inert; every console page carries the
CSP; the keyboard alone reaches the content and the actions; a queue is purged only once
confirmed; an observed schedule is adopted. The screenshots in docs/console/ are taken here.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from console_rig import LAPTOP, PHONE, SCREENSHOTS, WAIT_MS, Rig, Watch, log_in

from z4j_core.testing.brainproc import ADMIN_TOKEN
from z4j_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: As console_app.PAYLOAD (that module is the worker's: it needs the worker's environment).
PAYLOAD = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
PAGES = ("/", "/tasks", "/schedules", "/schedules/new", "/queues", "/agents", "/audit")


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)  # a generous deadline on a busy machine, not a measure
    return expect


def test_login_and_the_csp_on_every_page(browser: Any, rig: Rig) -> None:
    context = browser.new_context(viewport=LAPTOP, base_url=rig.brain.http_url)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        answer = page.goto("/tasks")
        assert page.url.endswith("/login?next=%2Ftasks")  # no session: to the login page
        assert answer is not None and answer.headers["content-security-policy"] == CSP
        page.get_by_label("Token").fill("z4j_op_not-a-real-token")
        page.get_by_role("button", name="Log in").click()
        _expect()(page.get_by_role("alert")).to_contain_text("wrong, revoked or expired")
        page.get_by_label("Token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Log in").click()
        _expect()(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()
        for path in PAGES:
            answer = page.goto(path)
            assert answer is not None and answer.status == 200, path
            headers = answer.headers
            assert headers["content-security-policy"] == CSP, path
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["referrer-policy"] == "same-origin", path
        for asset in ("/static/console.js", "/static/console.css"):
            answer = page.goto(asset)
            assert answer is not None and answer.headers["content-security-policy"] == CSP
        page.goto("/")
        page.get_by_role("button", name="Log out").click()
        _expect()(page.get_by_role("heading", name="Log in")).to_be_visible()
        page.goto("/agents")
        assert "/login" in page.url  # the session ended
    finally:
        context.close()


def test_a_task_appears_live_and_its_detail_opens(admin: tuple[Any, Watch], rig: Rig) -> None:
    page, watch = admin
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    _expect()(page.get_by_text("Updates live.")).to_be_visible()
    page.evaluate("window.__same_page = true")
    task_id = rig.run("console_app.record")
    row = page.get_by_role("row").filter(has_text=task_id)
    _expect()(row).to_be_visible()  # pushed by the server, no reload
    rig.wait_state(task_id, "succeeded")
    _expect()(row.get_by_text("succeeded")).to_be_visible()
    assert page.evaluate("window.__same_page") is True
    row.get_by_role("link", name="console_app.record").click()
    _expect()(page.get_by_role("heading", name="Task console_app.record")).to_be_visible()
    _expect()(page.get_by_text(task_id).first).to_be_visible()
    timeline = page.get_by_role("region", name="Lifecycle")
    _expect()(timeline.get_by_text("succeeded")).to_be_visible()
    _expect()(timeline.get_by_text("started")).to_be_visible()
    assert watch.errors == []


def test_retry_a_failed_task_and_see_the_new_run(admin: tuple[Any, Watch], rig: Rig) -> None:
    page, watch = admin
    task_id = rig.run("console_app.fail", "on purpose")
    rig.wait_state(task_id, "failed")
    page.goto(f"/task/huey/{task_id}")
    _expect()(page.get_by_role("region", name="Exception")).to_contain_text("fails on purpose")
    page.get_by_role("button", name="Retry").click()
    _expect()(page.get_by_role("status")).to_contain_text("Done: retry")
    taken = page.get_by_role("region", name="Actions taken")
    _expect()(taken.get_by_role("cell", name="done", exact=True)).to_be_visible()
    new_run = taken.get_by_role("link")
    new_id = new_run.inner_text()
    assert new_id and new_id != task_id
    new_run.click()
    _expect()(page.get_by_role("heading", name="Task console_app.fail")).to_be_visible()
    _expect()(page.get_by_text("Retry of")).to_be_visible()
    rig.wait_state(new_id, "failed")  # the new run ran (and failed again, by design)
    assert rig.task(new_id) is not None
    assert watch.errors == []


def test_retry_every_failed_task_of_a_name_counted_first(
    admin: tuple[Any, Watch], rig: Rig
) -> None:
    page, watch = admin
    failed = [rig.run("console_app.fail", f"bulk {n}") for n in range(2)]
    for task_id in failed:
        rig.wait_state(task_id, "failed")
    page.goto("/tasks")
    page.get_by_label("Task name").fill("console_app.fail")
    page.get_by_label("State").select_option("failed")
    page.get_by_label("Updated").select_option("15m")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_role("button", name=re.compile("^Cancel every")).count() == 0
    page.get_by_role("button", name="Retry every failed task…").click()
    # Counted (the API's dry run), nothing sent yet.
    counted = page.get_by_role("status")
    _expect()(counted).to_contain_text("tasks match.")
    matched = int(counted.inner_text().split()[0])
    assert matched >= 2
    assert all(a["task_id"] not in failed for a in rig.api("GET", "/actions?limit=50")["actions"])
    page.get_by_role("button", name=f"Retry {matched} tasks").click()
    _expect()(page.get_by_role("heading", name=f"Bulk retry of {matched} tasks")).to_be_visible()
    # The progress follows live: every retry answered, no reload.
    _expect()(page.get_by_role("status")).to_have_text(f"Finished: {matched} done.")
    bulk_id = page.url.rsplit("/", 1)[1]
    retried = rig.api("GET", f"/actions?bulk_id={bulk_id}&limit=100")["actions"]
    assert {a["task_id"] for a in retried} >= set(failed)
    assert all(a["status"] == "done" and a["requested_by"] == "admin" for a in retried)
    assert watch.errors == []


def test_cancel_a_scheduled_task(admin: tuple[Any, Watch], rig: Rig) -> None:
    page, watch = admin
    task_id = rig.run("console_app.record", "not before an hour", delay=3600)
    rig.wait_state(task_id, "scheduled")
    page.goto(f"/task/huey/{task_id}")
    _expect()(page.get_by_role("button", name="Cancel")).to_be_visible()
    assert page.get_by_role("button", name="Retry").count() == 0  # not finished: nothing to retry
    page.get_by_role("button", name="Cancel").click()
    _expect()(page.get_by_role("status")).to_contain_text("Done: cancel")
    taken = page.get_by_role("region", name="Actions taken")
    _expect()(taken.get_by_role("cell", name="done", exact=True)).to_be_visible()
    rig.wait_state(task_id, "revoked")  # recorded in its lifecycle
    page.reload()
    assert page.get_by_role("button", name="Cancel").count() == 0
    assert watch.errors == []


def test_backfill_a_schedule_dry_run_first(admin: tuple[Any, Watch], rig: Rig) -> None:
    page, watch = admin
    page.goto(f"/schedule/{rig.schedule_id}")
    # nightly-report fires at 04:00 Berlin: three slots in the last three days.
    now = time.time()
    start = datetime.fromtimestamp(now - 3 * 86400 + 60, tz=timezone.utc)
    end = datetime.fromtimestamp(now - 60, tz=timezone.utc)
    page.get_by_label("Backfill from").fill(start.isoformat(timespec="seconds"))
    page.get_by_label("to", exact=True).fill(end.isoformat(timespec="seconds"))
    page.get_by_role("button", name="Backfill").click()  # the dry run box starts checked
    dry = page.get_by_role("heading", name="Backfill of nightly-report (dry run)")
    _expect()(dry).to_be_visible()
    _expect()(page.get_by_role("status")).to_have_text("3 slots in the range; 0 fired.")
    assert rig.api("GET", f"/schedules/{rig.schedule_id}/fires")["fires"] == []
    page.go_back()
    page.get_by_label("dry run").uncheck()
    page.get_by_role("button", name="Backfill").click()
    _expect()(page.get_by_role("status")).to_have_text("3 slots in the range; 3 fired.")
    fires = rig.api("GET", f"/schedules/{rig.schedule_id}/fires")["fires"]
    assert sorted(f["kind"] for f in fires) == ["backfill"] * 3
    assert watch.errors == []


def test_pause_and_resume_a_schedule(admin: tuple[Any, Watch], rig: Rig) -> None:
    page, watch = admin
    page.goto("/schedules")
    row = page.get_by_role("row").filter(has_text="nightly-report")
    row.get_by_label("Pause note for nightly-report").fill("database maintenance")
    row.get_by_role("button", name="Pause nightly-report").click()
    row = page.get_by_role("row").filter(has_text="nightly-report")
    _expect()(row.get_by_text("paused", exact=True)).to_be_visible()
    _expect()(row.get_by_text("database maintenance")).to_be_visible()
    schedule = rig.api("GET", f"/schedules/{rig.schedule_id}")
    assert not schedule["enabled"] and schedule["pause_note"] == "database maintenance"
    row.get_by_role("button", name="Resume nightly-report").click()
    row = page.get_by_role("row").filter(has_text="nightly-report")
    _expect()(row.get_by_role("button", name="Pause nightly-report")).to_be_visible()
    assert rig.api("GET", f"/schedules/{rig.schedule_id}")["enabled"]
    actions = [(r["actor"], r["action"]) for r in rig.api("GET", "/audit?limit=1000")["audit"]]
    assert ("admin", "schedule.pause") in actions and ("admin", "schedule.resume") in actions
    assert watch.errors == []


def test_the_cron_preview_updates_while_typing(admin: tuple[Any, Watch], rig: Rig) -> None:
    page, watch = admin
    page.goto("/schedules/new")
    preview = page.get_by_role("region", name="Next fires")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    expression = page.get_by_label("Cron expression")
    expression.fill("")
    expression.press_sequentially("30 9 * * 1", delay=20)
    _expect()(preview).to_contain_text("09:30:00+0")  # local Berlin times
    assert len(re.findall("T09:30:00", preview.inner_text())) == 5
    expression.press_sequentially("x")  # "1x" is no day of the week
    _expect()(preview.locator(".error")).to_be_visible()
    assert watch.errors == []


def test_a_viewer_is_offered_no_action_and_refused_a_forged_one(browser: Any, rig: Rig) -> None:
    page = log_in(browser, rig, rig.viewer_token)
    watch = Watch()
    watch.attach(page)
    try:
        task_id = rig.run("console_app.fail", "for the viewer")
        rig.wait_state(task_id, "failed")
        page.goto(f"/task/huey/{task_id}")
        _expect()(page.get_by_role("heading", name="Task console_app.fail")).to_be_visible()
        assert page.get_by_role("button", name="Retry").count() == 0
        page.goto(f"/schedule/{rig.schedule_id}")
        _expect()(page.get_by_role("heading", name="Schedule nightly-report")).to_be_visible()
        for name in ("Pause", "Resume", "Trigger now", "Backfill", "Delete"):
            assert page.get_by_role("button", name=name).count() == 0, name
        page.goto("/schedules")
        assert page.get_by_role("link", name="New schedule").count() == 0
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        base = rig.brain.http_url
        forged = page.request.post(
            f"{base}/schedule/{rig.schedule_id}/pause",
            form={"csrf": csrf or "", "note": "forged"},
            headers={"Origin": base},
        )
        assert forged.status == 403
        forged = page.request.post(
            f"{base}/tasks/retry",
            headers={"Origin": base},
            form={"csrf": csrf or "", "task_id": task_id, "engine": "huey"},
        )
        assert forged.status == 403
        assert rig.api("GET", f"/schedules/{rig.schedule_id}")["enabled"]
        assert watch.errors == []
    finally:
        page.context.close()


def test_hostile_names_arguments_and_exceptions_stay_inert(
    admin: tuple[Any, Watch], rig: Rig
) -> None:
    page, watch = admin
    task_id = rig.run(f"console_app.{PAYLOAD}", PAYLOAD, "<svg onload=alert(3)>")
    rig.wait_state(task_id, "failed")
    for path in ("/tasks", f"/task/huey/{task_id}", "/", "/agents"):
        page.goto(path)
        page.get_by_role("main").wait_for()
        if path not in {"/", "/agents"}:
            _expect()(page.get_by_text(PAYLOAD).first).to_be_visible()  # shown, as text
        assert page.locator("img[src=x], svg[onload], main script").count() == 0, path
        assert page.evaluate("typeof window.__pwned") == "undefined", path
    page.goto(f"/task/huey/{task_id}")
    _expect()(page.get_by_role("region", name="Exception")).to_contain_text("ValueError")
    _expect()(page.get_by_role("region", name="Arguments (redacted by the agent)")).to_contain_text(
        "<svg onload=alert(3)>"
    )
    assert watch.errors == []


def test_the_keyboard_skips_to_the_content_and_reaches_every_action(
    admin: tuple[Any, Watch], rig: Rig
) -> None:
    page, watch = admin
    page.goto("/schedules")
    page.keyboard.press("Tab")
    _expect()(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    _expect()(page.get_by_role("link", name="New schedule")).to_be_focused()
    # Tab on to the first schedule's pause note and pause it from the keyboard alone.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "note":
            break
    page.keyboard.type("from the keyboard")
    page.keyboard.press("Enter")  # submits the pause form
    _expect()(page.get_by_text("from the keyboard")).to_be_visible()
    paused = [s for s in rig.api("GET", "/schedules")["schedules"] if not s["enabled"]]
    assert [s["pause_note"] for s in paused] == ["from the keyboard"]
    for schedule in paused:
        rig.api("POST", f"/schedules/{schedule['id']}/resume")
    assert watch.errors == []


def test_purge_a_queue_after_confirming(admin: tuple[Any, Watch], rig: Rig) -> None:
    page, watch = admin
    wait_for(lambda: rig.api("GET", "/queues")["queues"], 30, "the worker's queue depth report")
    page.goto("/queues")
    row = page.get_by_role("row").filter(has_text="huey").first
    row.get_by_role("button", name=re.compile("^Purge ")).click()  # not confirmed: not sent
    assert page.url.endswith("/queues")
    row.get_by_label(re.compile("remove its")).check()
    row.get_by_role("button", name=re.compile("^Purge ")).click()
    _expect()(page.get_by_role("heading", name="Purge: done")).to_be_visible()
    actions = rig.api("GET", "/actions?limit=5")["actions"]
    assert actions[0]["action"] == "purge" and actions[0]["status"] == "done"
    assert watch.errors == []


def test_adopt_an_observed_native_schedule(admin: tuple[Any, Watch], rig: Rig) -> None:
    page, watch = admin
    page.goto("/schedules")
    observed = page.get_by_role("region", name="Observed native schedules (read-only)")
    _expect()(observed.get_by_text("huey_periodic")).to_be_visible()
    observed.get_by_role("link", name=re.compile("^Adopt ")).first.click()
    _expect()(page.get_by_role("heading", name=re.compile("^Adopt huey_periodic"))).to_be_visible()
    page.get_by_label("Brain schedule name").fill("adopted-nightly")
    page.get_by_label(re.compile("^Time zone")).fill("UTC")
    accept = page.get_by_label("accept the differences")
    if accept.count():
        accept.check()
    page.get_by_role("button", name="Adopt").click()
    _expect()(page.get_by_role("heading", name="Schedule adopted-nightly")).to_be_visible()
    created = rig.api("GET", "/schedules/adopted-nightly")
    assert created["task"] == "console_app.nightly"
    assert created["schedule"]["expression"] == "30 2 * * *"
    assert watch.errors == []


def test_screenshots_of_every_page(admin: tuple[Any, Watch], browser: Any, rig: Rig) -> None:
    page, watch = admin
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    failed = rig.run("console_app.fail", "for the screenshot")
    rig.wait_state(failed, "failed")
    shots = {
        "overview": "/",
        "tasks": "/tasks",
        "task": f"/task/huey/{failed}",
        "schedules": "/schedules",
        "schedule": f"/schedule/{rig.api('GET', '/schedules/heartbeat')['id']}",
        "schedule-form": "/schedules/new?expression=0+9+*+*+1-5&timezone=Europe/Berlin",
        "queues": "/queues",
        "agents": "/agents",
        "audit": "/audit",
    }
    for name, path in shots.items():
        page.goto(path)
        page.get_by_role("main").wait_for()
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    phone = log_in(browser, rig, ADMIN_TOKEN, viewport=PHONE)
    try:
        phone.goto("/tasks")
        phone.get_by_role("main").wait_for()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the tasks page is {width} px wide on a phone"
        phone.screenshot(path=str(SCREENSHOTS / "tasks-phone.png"), full_page=True)
    finally:
        phone.context.close()
    assert watch.errors == []
