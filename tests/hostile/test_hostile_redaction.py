"""Redaction through a real engine: secrets planted in a Huey task's arguments, keyword arguments,
exception messages and traceback source lines, run by a real `huey_consumer` (and enqueued by a
real producer process) with the z4j agent, never reach the brain's store. The database files'
bytes and every row of every table are searched for each planted secret.

Only what the redactor promises is planted: values under secret-looking keys (and keys named in
``Z4J_REDACT_KEYS``), credentials in URLs, ``Bearer``/``Basic`` credentials, and
``password=...``-style assignments in free text. A bare string argument is not recognisable as
a secret and is stored as given (docs/operations.md says so).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from z4j_core.testing import brainapi
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore

pytest.importorskip("huey")
pytest.importorskip("z4j_huey")

#: Where each secret is planted (the key) -> the planted value is "PLANTED" + random hex.
PLACES = [
    "arg: dict under 'password'",
    "arg: URL credentials",
    "arg: Authorization Bearer header",
    "arg: nested dict under 'secret'",
    "kwarg: password=",
    "kwarg: api_key=",
    "kwarg: card_number= (Z4J_REDACT_KEYS)",
    "kwarg: dict under 'token'",
    "kwarg: long string with URL credentials",
    "message: password=...",
    "message: URL credentials",
    "message: Bearer credentials",
    "message: repr of a dict with 'password'",
    "traceback: URL credentials in a source line",
    "traceback: api_key=... in a source line",
    "traceback: chained exception with secret=...",
]

APP = '''
"""Tasks with planted secrets (written by test_hostile_redaction.py)."""
import os
from huey import SqliteHuey
import z4j_huey

huey = z4j_huey.instrument(SqliteHuey("hostile-secrets", filename=os.environ["SECRETS_HUEY_DB"]))
S = {secrets!r}


class LoginError(Exception):
    pass


@huey.task()
def charge(*args, **kwargs):
    return "charged"


def connect(dsn):
    raise ConnectionError("could not connect to " + dsn)


@huey.task()
def leak_in_message(which):
    if which == 0:
        raise LoginError("login failed: password=" + S[9])
    if which == 1:
        connect("postgresql://app:" + S[10] + "@db.internal/app")
    if which == 2:
        raise PermissionError("rejected header Authorization: Bearer " + S[11])
    raise ValueError("bad config %r" % ({{"user": "app", "password": S[12]}},))


@huey.task()
def leak_in_traceback(which):
    if which == 0:
        connect("amqp://guest:{s13}@broker.internal//")  # the source line is in the traceback
    if which == 1:
        raise LoginError("gateway said: api_key={s14} is not allowed")
    try:
        raise KeyError("secret={s15}")
    except KeyError as exc:
        raise LoginError("lookup failed") from exc
'''

PRODUCER = """
import secrets_app as app
S = app.S
app.charge(
    {{"password": S[0], "user": "app"}},
    "redis://cache-user:" + S[1] + "@cache.internal:6379/0",
    "Authorization: Bearer " + S[2],
    [{{"db": {{"secret": S[3], "host": "db"}}}}],
    password=S[4], api_key=S[5], card_number=S[6], options={{"token": S[7], "retries": 3}},
    note="x" * 300 + " https://svc:" + S[8] + "@api.internal/v1 " + "y" * 300,
)
for which in range(4):
    app.leak_in_message(which)
for which in range(3):
    app.leak_in_traceback(which)
app.charge("a bare string is not recognisable as a secret: " + S[-1])
"""


def wait_for_events(brain: BrainProcess, names: dict[str, int], timeout: float = 90) -> None:
    """Until each task name has the given number of terminal events stored (read over the
    brain's API)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = Counter(
            event["task_name"]
            for event in brainapi.events(brain)
            if event["kind"] in ("succeeded", "failed")
        )
        if all(counts.get(name, 0) >= n for name, n in names.items()):
            return
        assert time.monotonic() < deadline, f"terminal events so far: {counts}"
        time.sleep(0.2)


def test_planted_secrets_never_reach_the_store(brain: BrainProcess, tmp_path: Path) -> None:
    # The last one is the control: planted where no redactor could know it is a secret, it must
    # be found, or the search is looking in the wrong place.
    planted = [f"PLANTED{secrets.token_hex(12)}" for _ in [*PLACES, "control"]]
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "secrets_app.py").write_text(
        textwrap.dedent(APP).format(
            secrets=planted, s13=planted[13], s14=planted[14], s15=planted[15]
        )
    )
    (app_dir / "producer.py").write_text(textwrap.dedent(PRODUCER).format())
    token = brain.create_token("huey")
    brain.start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("Z4J_")},
        "Z4J_BRAIN_URL": brain.url,
        "Z4J_TOKEN": token,
        "Z4J_REDACT_KEYS": "card_number",
        "SECRETS_HUEY_DB": str(tmp_path / "huey.sqlite3"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(app_dir), os.environ.get("PYTHONPATH")])),
    }
    producer = subprocess.run(
        [sys.executable, "producer.py"],
        cwd=app_dir,
        env={**env, "Z4J_SPOOL_DIR": str(tmp_path / "sp")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert producer.returncode == 0, producer.stderr
    log = (tmp_path / "consumer.log").open("wb")
    consumer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "huey.bin.huey_consumer",
            "secrets_app.huey",
            "--workers",
            "2",
            "--delay",
            "0.05",
            "--max-delay",
            "0.2",
        ],
        cwd=app_dir,
        env={**env, "Z4J_SPOOL_DIR": str(tmp_path / "sc")},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        wait_for_events(
            brain,
            {
                "secrets_app.charge": 2,
                "secrets_app.leak_in_message": 4,
                "secrets_app.leak_in_traceback": 3,
            },
        )
    finally:
        consumer.send_signal(signal.SIGINT)
        try:
            consumer.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(consumer.pid, signal.SIGKILL)
            consumer.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(consumer.pid, signal.SIGKILL)
    brain.stop()

    database = Path(brain.database)
    files = {p.name: p.read_bytes() for p in database.parent.glob(database.name + "*")}
    store = BrainStore(str(database))
    rows = store.every_table()
    tables = list(rows)
    stored = store.events_of_tasks("secrets_app.")
    # The search looks at the right rows: the events are there, with redactions in them.
    text = repr(stored)
    assert "[redacted]" in text and "ConnectionError" in text and "LoginError" in text
    # Tracebacks were stored with their source lines, scrubbed.
    assert "amqp://guest:[redacted]@broker.internal" in text
    assert "api_key=[redacted] is not allowed" in text
    places = {**files, **{f"table {t}": r.encode() for t, r in rows.items()}}
    found = [
        f"{place} -> {name}"
        for place, secret in zip([*PLACES, "control"], planted, strict=True)
        for name, data in places.items()
        if secret.encode() in data
    ]
    assert "control -> table events" in found and f"control -> {database.name}" in found
    leaks = [f for f in found if not f.startswith("control")]
    assert not leaks, leaks
    print(
        f"\n{len(PLACES)} planted secrets (and a control found where expected), "
        f"{len(stored)} events of the tasks stored, {len(tables)} tables and {len(files)} "
        "database files searched: none found"
    )
