"""Running the brain in production: /metrics parsed by the Prometheus client's own parser,
/health/live and /health/ready, JSON logs and the access log, brain.toml and `config check`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from brain_helpers import ADMIN, RunningBrain, TestAgent, make_hello, serving
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from z4j_brain import __version__
from z4j_brain.cli import run
from z4j_brain.config import SETTINGS, ConfigError, load_with_file
from z4j_brain.health import CACHE_SECONDS
from z4j_brain.logs import JsonFormatter, configure_logging
from z4j_brain.metrics import OTHER_TASK, TaskLabels
from z4j_brain.migrations import LATEST_VERSION
from z4j_brain.store import Store
from z4j_brain.tokens import AdminCheck
from z4j_core.testing.waiting import wait_for
from z4j_core.wire import Command, CommandResult, CommandStatus, DroppedReport, Event, EventBatch
from z4j_core.wire.frames import CommandKind, LifecycleKind
from z4j_core.wire.signing import new_token

# -- metrics ------------------------------------------------------------------------------------


def scrape(running: RunningBrain) -> dict[str, list[Sample]]:
    """Every family of /metrics, parsed by prometheus_client's parser, by family name."""
    with urllib.request.urlopen(running.url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(families: dict[str, list[Sample]], sample: str, **labels: str) -> float:
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    for s in families.get(family, []):
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {sample} {labels} in {families.get(family)}")


def _event(seq: int, kind: LifecycleKind, task: str, runtime: float | None = None) -> Event:
    return Event(
        seq=seq,
        kind=kind,
        at=1000.0 + seq,
        engine="testengine",
        task_id=f"t{seq}",
        task_name=task,
        runtime=runtime,
    )


def test_metrics_parse_and_count_events_tasks_fires_agents(database: Path | str) -> None:
    with serving(database, Z4J_METRICS_TASKS="app.report") as running:
        token = running.create_token("agent-a")
        before = scrape(running)
        assert value(before, "z4j_agents_connected") == 0
        assert value(before, "z4j_leader") == 1
        assert value(before, "z4j_build_info", version=__version__) == 1
        assert value(before, "z4j_fires_total", outcome="enqueued") == 0

        async def scenario() -> None:
            agent = await TestAgent.connect(running.ws_url, token, make_hello("inst-1"))
            events = [
                _event(0, LifecycleKind.STARTED, "app.report"),
                _event(1, LifecycleKind.SUCCEEDED, "app.report", runtime=0.2),
                _event(2, LifecycleKind.FAILED, "app.report", runtime=3.0),
                _event(3, LifecycleKind.SUCCEEDED, "app.other", runtime=0.01),
            ]
            await agent.send(EventBatch(first_seq=0, events=events))
            await agent.recv_frame()  # the ack: stored
            await agent.ws.close()
            # After a reconnect the agent resends what it saw no ack for: the stored event
            # (seq 3) is not counted twice, the new one (seq 4) is.
            agent = await TestAgent.connect(running.ws_url, token, make_hello("inst-1"))
            resent = [events[3], _event(4, LifecycleKind.SUCCEEDED, "app.report", runtime=1.0)]
            await agent.send(EventBatch(first_seq=3, events=resent, pending=7))
            await agent.recv_frame()
            await agent.send(DroppedReport(total=5, reason="spool full"))
            spec = {"kind": "interval", "every": "1s"}
            status, _ = await asyncio.to_thread(
                running.api,
                "POST",
                "/api/v1/schedules",
                # forced: this test's agent reports no inventory
                {
                    "name": "tick",
                    "task": "app.tick",
                    "engine": "testengine",
                    "schedule": spec,
                    "force": True,
                },
            )
            assert status == 201
            answered = 0
            while answered < 2:
                frame = await agent.recv_frame(timeout=30)
                if isinstance(frame, Command) and frame.kind is CommandKind.FIRE:
                    await agent.send(
                        CommandResult(
                            command_id=frame.command_id,
                            status=CommandStatus.ENQUEUED,
                            native_id=frame.fire_id,
                        )
                    )
                    answered += 1
            await asyncio.sleep(0.5)  # the answers are recorded
            m = await asyncio.to_thread(scrape, running)
            await agent.ws.close()

            assert value(m, "z4j_agents_connected") == 1
            assert value(m, "z4j_engine_agents_connected", engine="testengine", app="shop") == 1
            assert value(m, "z4j_connected_agents_dropped_events", app="shop") == 5
            assert value(m, "z4j_connected_agents_outbox_events", app="shop") == 7

            def stored(kind: str) -> float:
                return value(m, "z4j_events_stored_total", engine="testengine", kind=kind)

            def finished(task: str, state: str) -> float:
                labels = {"engine": "testengine", "app": "shop", "task": task, "state": state}
                return value(m, "z4j_tasks_finished_total", **labels)

            assert (stored("started"), stored("succeeded"), stored("failed")) == (1, 3, 1)
            assert finished("app.report", "succeeded") == 2
            assert finished("app.report", "failed") == 1
            # Not in the allow-list: counted, under _other, never as its own label value.
            assert finished(OTHER_TASK, "succeeded") == 1
            assert not [s for s in m["z4j_tasks_finished"] if s.labels["task"] == "app.other"]
            assert value(m, "z4j_task_runtime_seconds_count", engine="testengine") == 4
            assert value(m, "z4j_task_runtime_seconds_sum", engine="testengine") == pytest.approx(
                4.21
            )
            assert value(m, "z4j_fires_total", outcome="enqueued") >= 2
            assert value(m, "z4j_fire_lateness_seconds_count") >= 2
            assert value(m, "z4j_store_writer_queue") >= 0
            assert value(m, "z4j_schedules_broken") == 0

        asyncio.run(scenario())


def test_two_brains_in_one_process_keep_their_own_metrics(tmp_path: Path) -> None:
    with (
        serving(tmp_path / "a.sqlite3") as a,
        serving(tmp_path / "b.sqlite3") as b,
    ):
        a.api("GET", "/api/v1/tasks", token="wrong")
        assert value(scrape(a), "z4j_auth_refused_total") == 1
        assert value(scrape(b), "z4j_auth_refused_total") == 0
        assert a.brain.metrics.registry is not b.brain.metrics.registry


def test_task_labels_are_bounded() -> None:
    labels = TaskLabels(allowed={"keep"}, top_n=2)
    assert [labels.label(n) for n in ("a", "b", "c", "keep", "a", "x" * 300)] == [
        "a",
        "b",
        OTHER_TASK,
        "keep",
        "a",
        OTHER_TASK,
    ]
    assert TaskLabels().label("anything") == OTHER_TASK


# -- health -------------------------------------------------------------------------------------


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_health_live_ready_and_not_ready(database: Path | str) -> None:
    with serving(database) as running:
        for path in ("/health/live", "/healthz"):
            status, body = _get_json(running.url + path)
            assert status == 200 and body == {
                "status": "ok",
                "agents_connected": 0,
                "version": __version__,
            }
        # A brain that has just started may still be electing its leader (Postgres): ready
        # comes once it knows one.
        status, body = wait_for(
            lambda: (found := _get_json(running.url + "/health/ready"))[0] == 200 and found,
            30,
            "the brain to be ready",
        )
        assert status == 200, body
        assert body["status"] == "ready" and body["version"] == __version__
        assert body["leader"] is True and body["schema_version"] == LATEST_VERSION
        assert all(body["checks"].values()) and body["problems"] == []

        # Another brain upgraded the schema past this one: not ready, and it says why.
        store = Store.open(database, migrate=False)
        try:
            with store.transaction():
                store.conn.execute("UPDATE schema_version SET version = ?", (LATEST_VERSION + 1,))
            # One answer serves every probe for about a second: the next one sees the change.
            status, body = wait_for(
                lambda: (found := _get_json(running.url + "/health/ready"))[0] == 503 and found,
                30,
                "the brain to notice the newer schema",
            )
            assert status == 503 and body["status"] == "not_ready"
            assert body["checks"]["migrations_current"] is False
            assert body["checks"]["store_writable"] is True
            assert any("upgrade z4j-brain" in p for p in body["problems"]), body
        finally:
            with store.transaction():
                store.conn.execute("UPDATE schema_version SET version = ?", (LATEST_VERSION,))
            store.close()
        wait_for(lambda: _get_json(running.url + "/health/ready")[0] == 200, 30, "ready again")


def test_a_flood_of_readiness_probes_costs_the_writer_about_one_job_a_second(
    database: Path | str,
) -> None:
    with serving(database) as running:
        brain = running.brain
        wait_for(lambda: _get_json(running.url + "/health/ready")[0] == 200, 30, "ready")
        writes = 0
        original = brain.write

        def counting(job: Any) -> Any:
            nonlocal writes
            writes += 1
            return original(job)

        brain.write = counting  # type: ignore[method-assign]
        time.sleep(CACHE_SECONDS * 1.5)  # the wait's last answer has expired: one fresh check
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: _get_json(running.url + "/health/ready"), range(64)))
        elapsed = time.monotonic() - started
        assert all(status == 200 and body["status"] == "ready" for status, body in answers)
        # At most one check per second of the flood (plus the one in flight at its start).
        assert 1 <= writes <= int(elapsed / CACHE_SECONDS) + 2, (writes, elapsed)


@pytest.mark.postgres
def test_a_follower_is_ready_when_another_brain_leads() -> None:
    from z4j_core.testing.postgres import temporary_database

    with temporary_database() as url, serving(url) as leader, serving(url) as follower:
        assert leader.brain.scheduler.leading
        status, body = _get_json(follower.url + "/health/ready")
        assert status == 200, body
        assert body["leader"] is False and body["checks"]["leader_known"] is True


# -- logs ---------------------------------------------------------------------------------------


def test_json_log_lines_have_stable_keys_and_extras() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    try:
        logging.getLogger("z4j.test").info(
            "hello %s", "there", extra={"agent": "inst-1", "color_message": "\x1b[36mhello\x1b[0m"}
        )
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("z4j.test").exception("failed")
        logging.getLogger("z4j.test").debug("not shown at info")
    finally:
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert list(first)[:4] == ["ts", "level", "logger", "msg"]
    assert first["level"] == "INFO" and first["logger"] == "z4j.test"
    assert first["msg"] == "hello there" and first["agent"] == "inst-1"
    assert "color_message" not in first  # uvicorn's terminal copy of msg, ANSI codes and all
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc"]


def test_access_log_records_requests_and_never_a_token(
    running_brain: RunningBrain, caplog: pytest.LogCaptureFixture
) -> None:
    planted = new_token()
    caplog.set_level(logging.DEBUG, logger="z4j.brain.access")
    running_brain.api("GET", "/api/v1/tasks?limit=5")
    running_brain.api("GET", f"/api/v1/tasks?name={planted}", token=planted)
    running_brain.api("GET", f"/api/v1/commands/{planted}")
    request = urllib.request.Request(f"{running_brain.url}/api/v1/agents?token={planted}")
    request.add_header("Authorization", f"Bearer {ADMIN}")
    request.add_header("Cookie", f"session={planted}")
    urllib.request.urlopen(request, timeout=10).close()
    records = [r for r in caplog.records if r.name == "z4j.brain.access"]
    formatted = "\n".join(JsonFormatter().format(r) for r in records)
    assert planted not in formatted and planted[4:] not in formatted
    assert ADMIN not in formatted and ADMIN[4:] not in formatted
    statuses = [(r.method, r.path, r.status) for r in records]  # type: ignore[attr-defined]
    assert ("GET", "/api/v1/tasks", 200) in statuses
    assert ("GET", "/api/v1/tasks", 401) in statuses
    assert ("GET", "/api/v1/commands/z4j_[redacted]", 404) in statuses
    assert all(r.levelno == logging.INFO for r in records)


def test_leadership_changes_are_logged_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="z4j.brain.scheduler")
    with serving(tmp_path / "b.sqlite3"):
        pass
    leader = [r for r in caplog.records if "scheduler leader" in r.getMessage()]
    assert leader and all(r.levelno == logging.INFO for r in leader)


def test_serve_with_a_config_file_logs_json_lines(tmp_path: Path) -> None:
    """`z4j brain serve --config brain.toml` with ``log.format = "json"``: every line on
    stderr is one JSON object; the database path is taken from the file's folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    env["Z4J_ADMIN_TOKEN"] = ADMIN
    config = tmp_path / "conf" / "brain.toml"
    config.parent.mkdir()
    config.write_text(
        "[server]\nport = 0\n[store]\ndatabase = 'data/b.sqlite3'\n[log]\nformat = 'json'\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "z4j_core.cli", "brain", "serve", "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("z4j brain serving on http://127.0.0.1:")
        url = line.split()[4]
        with urllib.request.urlopen(url + "/api/v1/openapi.json", timeout=10) as response:
            response.read()
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    records = [json.loads(x) for x in stderr.splitlines() if x.strip()]
    assert records, stderr
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    access = [r for r in records if r["logger"] == "z4j.brain.access"]
    assert access and access[0]["path"] == "/api/v1/openapi.json" and access[0]["status"] == 200
    assert any("scheduler leader" in r["msg"] and r["level"] == "INFO" for r in records)
    assert (tmp_path / "conf" / "data" / "b.sqlite3").exists()


# -- brain.toml ---------------------------------------------------------------------------------


def test_a_toml_file_configures_the_brain_and_env_and_flags_override_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("Z4J_DATABASE", raising=False)
    file = tmp_path / "brain.toml"
    file.write_text(
        "[server]\nhost = '0.0.0.0'\nport = 7800\n"
        "[store]\ndatabase = 'data/brain.sqlite3'\nevent_retention_days = 2.5\n"
        "[log]\nformat = 'json'\naccess_log = false\n"
        "[metrics]\ntask_names = ['app.a', 'app.b']\ntask_top_n = 10\n"
        "[link]\nwindow = 8\n"
    )
    config = load_with_file(file)
    assert (config.host, config.port) == ("0.0.0.0", 7800)
    assert config.database == tmp_path / "data" / "brain.sqlite3"  # relative to the file
    assert config.retention_seconds == 2.5 * 86400
    assert config.log_format == "json" and config.access_log is False
    assert config.metrics_task_names == ("app.a", "app.b") and config.metrics_task_top_n == 10
    assert config.limits.window == 8
    monkeypatch.setenv("Z4J_BRAIN_PORT", "7900")
    monkeypatch.setenv("Z4J_LOG_FORMAT", "text")
    assert load_with_file(file).port == 7900
    assert load_with_file(file).log_format == "text"
    assert load_with_file(file, port=7901, log_format="json").port == 7901


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nhots = 'x'\n", "unknown setting 'server.hots' (did you mean 'server.host'?)"),
        ("[sever]\nhost = 'x'\n", "unknown setting 'sever.host' (did you mean 'server.host'?)"),
        ("[server]\nport = '7700'\n", "server.port must be an integer, not str '7700'"),
        ("[log]\naccess_log = 'yes'\n", "log.access_log must be true or false"),
        ("[metrics]\ntask_names = 'a,b'\n", "metrics.task_names must be a list of strings"),
        ("[server\nport = 1\n", "not valid TOML"),
        ("[store]\nevent_retention_days = -1\n", "store.event_retention_days (in "),
        ("[log]\nformat = 'xml'\n", "log.format (in "),
    ],
)
def test_config_errors_name_the_key_and_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    file = tmp_path / "brain.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_with_file(file)
    assert expected in str(info.value) and str(file) in str(info.value)


def test_config_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[server]\nport = 7811\n[auth]\nadmin_token = 'z4j_admin_secret-value'\n")
    assert run(["config", "check", str(good), "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["port"] == 7811 and "secret-value" not in out
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nprot = 1\n")
    assert run(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("z4j: error: ") and "did you mean 'server.port'" in err
    assert run(["config", "check", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.sqlite3"))


def test_every_setting_is_documented() -> None:
    operations = (Path(__file__).parents[3] / "docs" / "operations.md").read_text()
    missing = [s.key for s in SETTINGS if f"`{s.key}`" not in operations]
    assert not missing, missing


def test_admin_token_rotation_reads_the_database_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("Z4J_DATABASE", raising=False)
    file = tmp_path / "brain.toml"
    file.write_text("[store]\ndatabase = 'data/brain.sqlite3'\n")
    Store.open(tmp_path / "data" / "brain.sqlite3").close()
    assert run(["admin-token", "--rotate", "--config", str(file)]) == 0
    token = capsys.readouterr().out.strip()
    store = Store.open(tmp_path / "data" / "brain.sqlite3")
    try:
        stored = store.admin_token_hash()
        assert stored is not None and AdminCheck(stored).verify(token)
    finally:
        store.close()
