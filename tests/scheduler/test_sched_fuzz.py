"""Fuzz of the brain's schedule API on a real brain process: generated schedules of every kind,
zone, instant and duration field are created, read, edited and deleted. Every answer is a 2xx
or a 400/409 naming what was wrong; never a 500, and the leader keeps ticking.

Examples scale with `Z4J_FUZZ_SCALE` (bench/bench_fuzz_schedules.py runs them at full count). No
timed assertion: the slowest call is printed; one past `HANG_SECONDS` fails as a hang.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.schedule_strategies import examples, schedule_specs
from z4j_core.testing.sink import make_brain, schedule_body

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
HANG_SECONDS = 20.0
names = itertools.count()
calls: list[tuple[float, str]] = []


@pytest.fixture(scope="module")
def brain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrainProcess]:
    process = make_brain(tmp_path_factory.mktemp("fuzz") / "brain")
    process.start()
    yield process
    process.stop()
    if calls:
        took, what = max(calls)
        print(f"\nslowest of {len(calls)} API calls: {took * 1000:.1f} ms ({what[:160]})")


def _call(brain: BrainProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{brain.http_url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    took = time.perf_counter() - began
    what = f"{method} {path} {json.dumps(body)[:200]}"
    calls.append((took, what))
    assert took < HANG_SECONDS, f"{what} took {took:.1f} s"
    assert status < 500, (status, raw, what)
    answer_body = json.loads(raw or b"null")
    if status >= 400:
        assert answer_body["error"] and "\n" not in answer_body["error"], answer_body
    return status, answer_body


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spec=schedule_specs(), edit=schedule_specs())
def test_the_schedule_api_answers_every_schedule_without_a_500(
    brain: BrainProcess, spec: dict[str, Any], edit: dict[str, Any]
) -> None:
    name = f"fz{next(names)}"
    status, created = _call(brain, "POST", "/api/v1/schedules", schedule_body(name, spec))
    assert status in (201, 400), (status, created)
    if status != 201:
        return
    status, shown = _call(brain, "GET", f"/api/v1/schedules/{name}")
    assert status == 200 and shown["state"] == "active", shown
    status, _ = _call(brain, "PATCH", f"/api/v1/schedules/{name}", {"schedule": edit})
    assert status in (200, 400)
    _call(brain, "POST", f"/api/v1/schedules/{name}/trigger", {"idempotency_key": "k"})
    _call(brain, "GET", f"/api/v1/schedules/{name}/fires")
    status, _ = _call(brain, "DELETE", f"/api/v1/schedules/{name}")
    assert status == 200


def test_the_leader_kept_ticking_through_the_fuzz(brain: BrainProcess) -> None:
    spec = {"kind": "interval", "every": "1s"}
    _call(brain, "POST", "/api/v1/schedules", schedule_body("after-fuzz", spec))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, history = _call(brain, "GET", "/api/v1/schedules/after-fuzz/fires")
        if len(history["fires"]) >= 2:
            break
        time.sleep(0.5)
    assert len(history["fires"]) >= 2
    _, schedules = _call(brain, "GET", "/api/v1/schedules")
    assert not [s for s in schedules["schedules"] if s["state"] == "broken"]
    log = Path(brain.log_path).read_text(errors="replace")
    assert "Traceback" not in log and "tick failed" not in log, log[-3000:]
