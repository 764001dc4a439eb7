"""A real Django project (tests/djproject) with z4j_django in INSTALLED_APPS, per engine: a real
worker process (`manage.py run_huey`, `manage.py rqworker`, `celery worker`, `manage.py
rundramatiq`) runs a task that a
management command enqueued, and a real brain sees both sides; runserver's autoreloader parent
never connects; quiet commands never attach; `manage.py check` reports bad settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from z4j_core.testing.brainapi import events
from z4j_core.testing.brainproc import BrainProcess, free_port
from z4j_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(180)]

PROJECT = Path(__file__).parent / "djproject"
TASK = "shop.tasks.add"


@pytest.fixture(scope="module")
def brain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrainProcess]:
    with BrainProcess(tmp_path_factory.mktemp("django-brain")) as running:
        yield running


@pytest.fixture(scope="module")
def token(brain: BrainProcess) -> str:
    return brain.create_token("django")


def project_env(
    brain: BrainProcess, token: str, engine: str, redis_url: str, app: str, **extra: Any
) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("Z4J_", "SHOP_"))}
    z4j = {"brain_url": brain.url, "token": token, "app_name": app, **extra}
    return {
        **clean,
        "SHOP_ENGINE": engine,
        "SHOP_REDIS_URL": redis_url,
        "SHOP_Z4J": json.dumps(z4j),
        "PYTHONPATH": str(PROJECT),
        "DJANGO_SETTINGS_MODULE": "proj.settings",
    }


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def start(env: dict[str, str], argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def kinds_of(brain: BrainProcess, task_id: str) -> dict[str, dict[str, Any]]:
    return {e["kind"]: e for e in events(brain) if e["task_id"] == task_id}


def agents(brain: BrainProcess, app: str) -> list[dict[str, Any]]:
    listed = brain.api("GET", "/api/v1/agents")["agents"]
    return [a for a in listed if a["app"] == app]


WORKERS = {
    "huey": [sys.executable, "manage.py", "run_huey", "--workers", "2"],
    "rq": [sys.executable, "manage.py", "rqworker", "default"],
    "celery": [
        sys.executable, "-m", "celery", "-A", "proj", "worker", "--pool", "prefork",
        "--concurrency", "2", "--queues", "shop", "--loglevel", "WARNING",
    ],
    "dramatiq": [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"],
}  # fmt: skip


@pytest.mark.parametrize("engine", ["huey", "rq", "celery", "dramatiq"])
def test_a_worker_runs_what_a_command_enqueued_and_the_brain_sees_both(
    engine: str, brain: BrainProcess, token: str, redis_url: str, tmp_path: Path
) -> None:
    app = f"shop-{engine}"
    env = project_env(brain, token, engine, redis_url, app)
    worker = start(env, WORKERS[engine], tmp_path / "worker.log")
    try:
        wait_for(
            lambda: any(a["connected"] for a in agents(brain, app)),
            60,
            f"the {engine} worker's agent to connect ({(tmp_path / 'worker.log').read_text()})",
        )
        sent = manage(env, "enqueue_add", "2", "3")
        assert sent.returncode == 0, sent.stderr
        task_id = sent.stdout.strip()
        seen = wait_for(
            lambda: (found := kinds_of(brain, task_id)) and "succeeded" in found and found,
            60,
            f"{TASK} {task_id} to succeed ({(tmp_path / 'worker.log').read_text()})",
        )
        assert seen["succeeded"]["engine"] == engine and seen["succeeded"]["task_name"] == TASK
        assert seen["succeeded"]["app"] == app
        # The enqueuing command reported the enqueue from its own process.
        assert "enqueued" in seen, sorted(seen)
        assert seen["enqueued"]["agent_instance"] != seen["succeeded"]["agent_instance"]
    finally:
        stop(worker)
    log = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in log, log


def test_runserver_attaches_in_the_serving_child_only(
    brain: BrainProcess, token: str, redis_url: str, tmp_path: Path
) -> None:
    app = "shop-web"
    env = project_env(brain, token, "huey", redis_url, app)
    port = free_port()
    server = start(
        env, [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"], tmp_path / "web.log"
    )
    try:
        import urllib.request

        def answered() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/add?a=4&b=5", timeout=5) as r:
                    return str(r.read().decode())
            except OSError:
                return ""

        log = tmp_path / "web.log"
        task_id = wait_for(answered, 60, f"runserver to answer ({log.read_text()})")
        wait_for(lambda: "enqueued" in kinds_of(brain, task_id), 30, "the view's enqueue")
        time.sleep(1.0)  # a second agent, had the reloader parent attached, would be here by now
        seen = agents(brain, app)
        assert len(seen) == 1, seen
        assert seen[0]["pid"] != server.pid  # the reloader parent is the process we started
    finally:
        stop(server)


def test_quiet_commands_do_not_attach(
    brain: BrainProcess, token: str, redis_url: str, tmp_path: Path
) -> None:
    quiet = project_env(
        brain,
        token,
        "huey",
        redis_url,
        "shop-quiet",
    )
    quiet["SHOP_DATABASE"] = str(tmp_path / "db.sqlite3")
    for command in (["check"], ["migrate", "--verbosity", "0"], ["showmigrations"]):
        done = manage(quiet, *command)
        assert done.returncode == 0, (command, done.stderr)
    loud = project_env(brain, token, "huey", redis_url, "shop-loud")
    attached = manage(loud, "z4j_attached")
    assert attached.returncode == 0, attached.stderr
    assert json.loads(attached.stdout) == ["huey"]
    wait_for(lambda: agents(brain, "shop-loud"), 30, "the command's agent to be seen")
    assert agents(brain, "shop-quiet") == []


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return manage(env, "check")


@pytest.mark.timeout(900)  # a dozen `manage.py check` processes on a busy 2-CPU machine
def test_system_checks_report_what_cannot_work(
    brain: BrainProcess, token: str, redis_url: str
) -> None:
    def env(z4j: dict[str, Any], engine: str = "huey", **extra: str) -> dict[str, str]:
        base = project_env(brain, token, engine, redis_url, "shop-checks")
        return {**base, "SHOP_Z4J": json.dumps(z4j), **extra}

    good = {"brain_url": brain.url, "token": token}
    ok = _check(env(good))
    assert ok.returncode == 0 and "no issues" in ok.stdout, ok.stderr

    cases: list[tuple[dict[str, Any], dict[str, str], str, list[str]]] = [
        ({}, {}, "z4j.E002", ["no brain URL", "Z4J_BRAIN_URL"]),
        ({"brain_url": brain.url}, {}, "z4j.E002", ["no agent token", "z4j tokens create"]),
        ({**good, "brian_url": "x"}, {}, "z4j.E001", ["unknown key 'brian_url'", "'brain_url'"]),
        ({**good, "engines": ["hury"]}, {}, "z4j.E001", ["unknown engine 'hury'", "'huey'"]),
        ({**good, "engines": ["rq"]}, {}, "z4j.E003", ["'django_rq' is not in INSTALLED_APPS"]),
        ({**good, "brain_url": "ftp://x"}, {}, "z4j.E002", ["must start with wss://"]),
        ({**good, "engines": ["celery"]}, {}, "z4j.E004", ["no Celery app was found"]),
        (
            {**good, "engines": ["rq"]},
            {
                "SHOP_APPS": json.dumps(["django_rq", "shop", "z4j_django"]),
                "SHOP_RQ_WORKER_CLASS": "rq.worker.Worker",
            },
            "z4j.W002",
            ["does not run the z4j agent", "z4j_rq.Worker"],
        ),
        (
            {**good, "engines": ["rq"]},
            {
                "SHOP_APPS": json.dumps(["django_rq", "shop", "z4j_django"]),
                "SHOP_RQ_WORKER_CLASS": "nowhere.Worker",
            },
            "z4j.E003",
            ["cannot be imported"],
        ),
        (
            good,
            {"SHOP_APPS": json.dumps(["django.contrib.contenttypes", "shop", "z4j_django"])},
            "z4j.W003",
            ["found no task engine"],
        ),
    ]
    for z4j, extra, code, fragments in cases:
        result = _check(env(z4j, **extra))
        text = result.stdout + result.stderr
        assert code in text, (z4j, text)
        for fragment in fragments:
            assert fragment in text, (fragment, text)
        if code.startswith("z4j.E"):
            assert result.returncode != 0, text
    # The environment fills what the setting leaves out, as for every agent.
    from_env = _check(env({}, Z4J_BRAIN_URL=brain.url, Z4J_TOKEN=token))
    assert from_env.returncode == 0, from_env.stdout + from_env.stderr
    # Disabled: nothing to check.
    assert _check(env({"disabled": True})).returncode == 0
