"""The test command's sessions: each engine gets an environment of its own where its pins need it.

`./scripts/test` runs every session below (what CI runs); `./scripts/test -s core` runs one.
Our own packages are always installed from this checkout, never by name from the index.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import nox

ROOT = Path(__file__).parent
REPORTS = ROOT / ".nox-reports"
CORE = "packages/z4j-core"
BRAIN = "packages/z4j-brain"
HUEY = "packages/z4j-huey"
RQ = "packages/z4j-rq"
CELERY = "packages/z4j-celery"
ARQ = "packages/z4j-arq"
DRAMATIQ = "packages/z4j-dramatiq"
TASKIQ = "packages/z4j-taskiq"
DJANGO = "packages/z4j-django"


def find_python(version: str) -> str:
    """An interpreter for `version` on this machine (PATH, then pyenv's folders), else ours.

    uv must never download an interpreter (this machine has no way to), so we hand nox a path.
    """
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python")))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    print(f"noxfile: no Python {version} here; using {sys.executable} instead", file=sys.stderr)
    return sys.executable


os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
LOWEST_PYTHON = find_python("3.10")
DEFAULT_PYTHON = find_python("3.11")
# astral: the solar tests' independent reference (the core computes the sun itself).
TEST_TOOLS = ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "astral>=3.2"]

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "core",
    "adapter_kit",
    "brain",
    "console",
    "huey",
    "scheduler",
    "rq",
    "celery",
    "dramatiq",
    "arq",
    "taskiq",
    "django",
    "packaging",
    "faults",
    "bench_report",
    "fleet",
    "soak",
    "bench_fire",
    "hostile",
    "upgrade",
]

# `./scripts/test` (and CI) runs the sessions above in these two lanes side by side
# (scripts/lanes.py), each lane in this order and with a test-run id of its own. They are
# balanced by the minutes each session took alone on a 2-CPU machine (about 20 a lane); fleet
# comes before soak, which reuses the environments fleet makes.
LANES = (
    ("lint", "core", "brain", "scheduler", "celery", "django", "packaging", "faults",
     "bench_report"),
    ("adapter_kit", "console", "huey", "rq", "dramatiq", "arq", "taskiq", "fleet", "soak",
     "bench_fire", "hostile", "upgrade"),
)  # fmt: skip

# One id for the whole run, so every session's tests share the same service slices.
os.environ.setdefault("Z4J_TEST_RUN_ID", uuid.uuid4().hex[:12])


@functools.cache
def run_spec() -> dict[str, Any]:
    """The engine run spec's install facts (z4j_core/testing/engines.py), read by a child
    interpreter since nox's own environment has no z4j installed."""
    done = subprocess.run(
        [sys.executable, "-m", "z4j_core.testing.engines", "--json"],
        env={**os.environ, "PYTHONPATH": str(ROOT / CORE / "src")},
        capture_output=True,
        text=True,
        check=True,
    )
    facts: dict[str, Any] = json.loads(done.stdout)
    return facts


def engine(name: str) -> list[str]:
    """An engine's adapter (editable, from this checkout) and its requirements, per the spec."""
    facts = run_spec()["engines"][name]
    return ["-e", f"packages/{facts['package']}", *facts["requirements"]]


def run_pytest(session: nox.Session, *paths: str) -> None:
    REPORTS.mkdir(exist_ok=True)
    report = REPORTS / f"{session.name}.xml"
    session.run(
        "pytest",
        *paths,
        f"--junitxml={report}",
        *session.posargs,
        # 5 is pytest's "no tests collected": a session whose tests are all deselected passes.
        success_codes=[0, 5],
    )


@nox.session(python=DEFAULT_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff and mypy (mypy checks against the lowest Python we declare)."""
    session.install(
        "ruff==0.17.6",
        "mypy==2.4.1",
        *TEST_TOOLS,
        "cryptography>=42",
        "tomli>=1.1",
        "-e",
        CORE,
        "-e",
        BRAIN,
    )  # cryptography: z4j_core.testing.tls is checked against its types; tomli: core reads
    # TOML with it on 3.10, the version mypy checks against
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python=LOWEST_PYTHON)
def core(session: nox.Session) -> None:
    """z4j-core's own tests, on the lowest Python it declares."""
    session.install(*TEST_TOOLS, "-e", CORE)
    run_pytest(session, f"{CORE}/tests")


@nox.session(python=LOWEST_PYTHON)
def adapter_kit(session: nox.Session) -> None:
    """The adapter that docs/adapters.md shows, built from the page: a toy engine (a queue with
    worker threads) driven through the agent in-process and through the conformance suite
    against a real brain."""
    session.install(*TEST_TOOLS, "-e", CORE, "-e", BRAIN)
    run_pytest(session, "tests/adapter_kit")


@nox.session(python=LOWEST_PYTHON)
def brain(session: nox.Session) -> None:
    """The brain's own tests (SQLite and Postgres), and the agent against real brain processes
    (tests/link). `cryptography` makes the test CA for the TLS tests."""
    session.install(*TEST_TOOLS, "cryptography>=42", "-e", CORE, "-e", BRAIN)
    run_pytest(session, f"{BRAIN}/tests", "tests/link")


@nox.session(python=LOWEST_PYTHON)
def console(session: nox.Session) -> None:
    """The web console in a real browser (tests/console): Playwright for Python driving
    Debian's Chromium (/usr/bin/chromium; never `playwright install`) against a real brain and a
    real Huey consumer; the tests also take the screenshots (into docs/console/ with
    Z4J_CONSOLE_SCREENSHOTS=docs)."""
    session.install(*TEST_TOOLS, "playwright>=1.40", "-e", CORE, "-e", BRAIN, *engine("huey"))
    run_pytest(session, "tests/console")


@nox.session(python=LOWEST_PYTHON)
def huey(session: nox.Session) -> None:
    """The Huey adapter: unit tests, and the conformance suite on real consumers (SqliteHuey,
    RedisHuey) through a real brain; gevent for the greenlet worker type; the demo."""
    session.install(*TEST_TOOLS, "-e", CORE, "-e", BRAIN, *engine("huey"), "gevent")
    run_pytest(session, f"{HUEY}/tests")


@nox.session(python=LOWEST_PYTHON)
def scheduler(session: nox.Session) -> None:
    """The brain's scheduler end to end (tests/scheduler): real brain processes on SQLite and
    Postgres, a real Huey consumer counting executions by fire id, the leader SIGKILLed a few
    times (bench/bench_scheduler.py does 20), catch-up after downtime, live edits, the audit
    chain."""
    session.install(*TEST_TOOLS, "-e", CORE, "-e", BRAIN, *engine("huey"), "psycopg[binary]")
    run_pytest(session, "tests/scheduler")


@nox.session(python=LOWEST_PYTHON)
def rq(session: nox.Session) -> None:
    """The RQ adapter: unit tests, real `rq worker` processes (forking, simple, spawn) and
    `rq cron` through a real brain, and rq-scheduler's jobs read from real Redis. RQ's pins may
    clash with other engines', so it has a session of its own; rq-scheduler's `crontab`
    clashes with python-crontab by import name, which nothing here installs."""
    session.install(*TEST_TOOLS, "-e", CORE, "-e", BRAIN, *engine("rq"), "rq-scheduler")
    run_pytest(session, f"{RQ}/tests")


@nox.session(python=LOWEST_PYTHON)
def celery(session: nox.Session) -> None:
    """The Celery adapter: unit tests, the conformance suite on real `celery worker` processes
    (prefork, solo, threads on Redis; prefork on RabbitMQ, the other two pools there in
    `full_matrix`) through a real brain, and beat observation
    (django-celery-beat on SQLite, redbeat in Redis). Celery's Redis transport needs a redis-py
    that arq's pin refuses, so Celery has a session of its own."""
    session.install(
        *TEST_TOOLS, "-e", CORE, "-e", BRAIN, *engine("celery"),
        "ephem", "django", "django-celery-beat", "celery-redbeat",
    )  # fmt: skip
    run_pytest(session, f"{CELERY}/tests")


# Not in nox.options.sessions: run when named, `./scripts/test -s full_matrix`.
@nox.session(python=DEFAULT_PYTHON)
def full_matrix(session: nox.Session) -> None:
    """What CI leaves out for time (Z4J_FULL_MATRIX=1): the Celery conformance suite on
    RabbitMQ with the solo and threads pools, and an install from the built files of every
    extra alone."""
    session.install(
        *TEST_TOOLS, "uv==0.13.8", "-e", CORE, "-e", BRAIN, *engine("celery"),
        "ephem", "django", "django-celery-beat", "celery-redbeat",
    )  # fmt: skip
    session.env["Z4J_FULL_MATRIX"] = "1"
    run_pytest(
        session,
        f"{CELERY}/tests/test_celery_conformance.py",
        "tests/distribution/test_wheels.py",
        "-k",
        "RabbitMQSolo or RabbitMQThreads or install_from_built_files",
    )


@nox.session(python=LOWEST_PYTHON)
def dramatiq(session: nox.Session) -> None:
    """The Dramatiq adapter: unit tests, the conformance suite on real `dramatiq` worker
    processes on Redis and RabbitMQ through a real brain (periodiq schedules observed), and
    dramatiq-crontab observation (it needs Django)."""
    session.install(
        *TEST_TOOLS, "-e", CORE, "-e", BRAIN, *engine("dramatiq"),
        "dramatiq[rabbitmq]", "periodiq", "dramatiq-crontab", "django",
    )  # fmt: skip
    run_pytest(session, f"{DRAMATIQ}/tests")


@nox.session(python=LOWEST_PYTHON)
def arq(session: nox.Session) -> None:
    """The arq adapter: unit tests, the conformance suite and lifecycle tests on real `arq`
    worker processes on Redis through a real brain. arq pins redis<6, which Celery's transport
    refuses, so arq has a session of its own."""
    session.install(*TEST_TOOLS, "-e", CORE, "-e", BRAIN, *engine("arq"))
    run_pytest(session, f"{ARQ}/tests")


@nox.session(python=LOWEST_PYTHON)
def taskiq(session: nox.Session) -> None:
    """The taskiq adapter: unit tests, the conformance suite on real `taskiq worker` processes
    (taskiq-redis's list-queue and stream brokers) through a real brain, a producer and a
    `taskiq scheduler` process, and schedules stored in Redis. taskiq-redis needs redis>=8,
    which arq's pin refuses, so taskiq has a session of its own."""
    session.install(*TEST_TOOLS, "-e", CORE, "-e", BRAIN, *engine("taskiq"))
    run_pytest(session, f"{TASKIQ}/tests")


@nox.session(python=LOWEST_PYTHON)
def django(session: nox.Session) -> None:
    """The Django integration: a real Django project (settings.Z4J, INSTALLED_APPS) per engine,
    each with a real worker process (`manage.py run_huey`, `manage.py rqworker`, `celery
    worker`, `manage.py rundramatiq`) running a task through a real brain, the system checks,
    and when the agent attaches in each kind of process (runserver's reloader, management
    commands)."""
    session.install(
        *TEST_TOOLS, "-e", CORE, "-e", BRAIN, "-e", DJANGO, "django",
        *engine("huey"), "django-rq", *engine("rq"), *engine("celery"),
        *engine("dramatiq"), "django-dramatiq",
    )  # fmt: skip
    run_pytest(session, f"{DJANGO}/tests")


@nox.session(python=DEFAULT_PYTHON)
def packaging(session: nox.Session) -> None:
    """Build every distribution and install it from the built files into fresh environments."""
    session.install(*TEST_TOOLS, "uv==0.13.8", "-e", CORE)
    run_pytest(session, "tests/distribution")


@nox.session(python=LOWEST_PYTHON)
def faults(session: nox.Session) -> None:
    """Faults with real processes (tests/reliability): a TCP proxy cuts, delays and blackholes
    agent<->brain and brain<->Postgres links, the brain is SIGSTOPped, agents run minutes off the
    brain's clock, and a Huey consumer fires a per-second schedule through it all: no event
    lost or stored twice, no slot fired twice, bounded memory and shutdown. Reduced counts here;
    bench/bench_faults.py prints the figures at full counts."""
    session.install(*TEST_TOOLS, "-e", CORE, "-e", BRAIN, *engine("huey"), "psycopg[binary]")
    run_pytest(session, "tests/reliability")


@nox.session(python=DEFAULT_PYTHON)
def bench_report(session: nox.Session) -> None:
    """bench/report.py's renderer on a canned report: tables, ratios to no-agent, percentiles,
    load warnings and the PNG charts (matplotlib). No bench runs here and nothing is timed."""
    session.install(*TEST_TOOLS, "matplotlib", "-e", CORE)
    run_pytest(session, "tests/bench_report")


@nox.session(python=DEFAULT_PYTHON)
def fleet(session: nox.Session) -> None:
    """The fleet end to end (tests/fleet): a brain on Postgres and one real worker per engine
    with the agent, schedules of every kind created through the CLI, each slot checked to have
    fired once into the right engine. Huey, RQ and Dramatiq run in this session's environment;
    Celery, arq and taskiq, whose redis-py pins clash, in environments of their own that the
    test makes with uv exactly as `scripts/fleet` does (z4j_core/testing/engines.py, cached in
    .venv-fleet-*)."""
    session.install(*TEST_TOOLS, *run_spec()["fleet"]["main"])
    run_pytest(session, "tests/fleet")


@nox.session(python=DEFAULT_PYTHON)
def soak(session: nox.Session) -> None:
    """Load: a reconnect storm of 200 simulated agents through a brain restart, a short soak
    (75 s of steady events and fires into a Huey consumer), and a short fleet soak on Postgres
    (two brains, one real worker per engine, every fault kind at least once; about 2 minutes).
    Full counts: bench/bench_storm.py, bench/soak.py, bench/soak_pg.py, `-s soak_nightly`.
    The fleet's Python, so the Celery, arq and taskiq environments `-s fleet` made are reused."""
    session.install(*TEST_TOOLS, *run_spec()["fleet"]["main"])
    run_pytest(session, "tests/soak")


# Not in nox.options.sessions: `./scripts/test` (and CI) runs it only when named,
# `./scripts/test -s soak_nightly`.
@nox.session(python=DEFAULT_PYTHON)
def soak_nightly(session: nox.Session) -> None:
    """The nightly-style fleet soak: ten minutes at 5,000 events/s and 100 fires/s over six
    engines' workers on two brains sharing Postgres, with every fault on its full period;
    behaviour asserted, figures printed (`-- -s` shows them). An hour: bench/soak_pg.py."""
    session.install(*TEST_TOOLS, *run_spec()["fleet"]["main"])
    session.env["Z4J_SOAK_NIGHTLY"] = "1"
    run_pytest(session, "tests/soak/test_soak_fleet.py", "-k", "nightly")


@nox.session(python=LOWEST_PYTHON)
def bench_fire(session: nox.Session) -> None:
    """The fire-latency benchmarks' counting (slots, missing, doubled) and one short run of
    bench/bench_fire_latency.py into a real Huey consumer through a real brain (about 20 s)."""
    session.install(*TEST_TOOLS, "-e", CORE, "-e", BRAIN, *engine("huey"))
    run_pytest(session, "tests/bench_fire")


@nox.session(python=LOWEST_PYTHON)
def hostile(session: nox.Session) -> None:
    """Hostile input against real brain processes (tests/hostile): the agent endpoint fuzzed
    with hypothesis, the HTTP API with schemathesis over the served OpenAPI document, bad and
    brute-forced tokens, tokens searched in logs and stores (SQLite, Postgres), mutations without
    the admin token, the audit's actor and source, TLS, redaction through a real Huey consumer.
    `Z4J_HOSTILE_SCALE=10` multiplies the generated inputs (bench and soak runs)."""
    session.install(
        *TEST_TOOLS, "schemathesis>=4.30,<5", "cryptography>=42", "psycopg[binary]", "huey",
        "-e", CORE, "-e", BRAIN, "-e", HUEY,
    )  # fmt: skip
    run_pytest(session, "tests/hostile")


@nox.session(python=LOWEST_PYTHON)
def upgrade(session: nox.Session) -> None:
    """Upgrades (tests/upgrade): the previous release, built from this repository's history
    into `.venv-previous-<commit>` with uv, against this one: agents and brains of both
    releases together, a previous store migrated in place (SQLite, Postgres), a rolling upgrade
    of two brains, a schema newer than the brain refused."""
    session.install(
        *TEST_TOOLS, "uv==0.13.8", "huey", "psycopg[binary]", "-e", CORE, "-e", BRAIN, "-e", HUEY
    )
    run_pytest(session, "tests/upgrade")


# A name in nox.options.sessions without its @nox.session function would be skipped by a run
# that lists every session; refuse to load instead.
_undefined = [name for name in nox.options.sessions if name not in nox.registry.get()]
if _undefined:
    raise SystemExit(f"noxfile.py: sessions listed but not defined: {', '.join(_undefined)}")


# Not in nox.options.sessions: it needs the advisory services on the network, which CI machines
# without outbound access cannot reach. `./scripts/test -s audit` after a test run.
@nox.session(python=DEFAULT_PYTHON)
def audit(session: nox.Session) -> None:
    """Known vulnerabilities in what the test environments installed: every environment under
    .nox (the exact versions a test run resolved), frozen and given to pip-audit. Our own z4j
    packages are left out: they are not on the index under these names (another product's are).
    docs/dependencies.md says why each package's bounds are what they are."""
    session.install("pip-audit==2.10.1")
    environments = sorted(
        path
        for path in (ROOT / ".nox").iterdir()
        if path.name != session.name and (path / "bin" / "python").exists()
    )
    if not environments:
        session.error("no test environment under .nox to audit: run ./scripts/test first")
    service = session.posargs or ["--vulnerability-service", "pypi"]
    frozen_dir = Path(session.create_tmp())
    for environment in environments:
        frozen = frozen_dir / f"{environment.name}.txt"
        frozen.write_text(frozen_requirements(environment / "bin" / "python"))
        session.log(f"auditing .nox/{environment.name}")
        session.run(
            "pip-audit",
            "--requirement",
            str(frozen),
            "--no-deps",
            "--disable-pip",
            # A package the service could not be asked about fails the run: without it, an
            # unreachable service would pass as "no known vulnerabilities".
            "--strict",
            "--progress-spinner",
            "off",
            *service,
        )


def frozen_requirements(python: Path) -> str:
    """`name==version` of every distribution an environment holds, except our own."""
    listing = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m\n"
            "for d in m.distributions(): print(f\"{d.metadata['Name']}=={d.version}\")",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    pins = {line.lower() for line in listing if not line.lower().startswith("z4j")}
    return "".join(f"{pin}\n" for pin in sorted(pins))
