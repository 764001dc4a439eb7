"""The benchmark report: every bench of issue 13, on this machine, in one run, one command.

    bench/report                    # the full run (roughly 1½ hours on a quiet 2-CPU machine)
    bench/report --quick            # reduced counts: checks the tooling (15-35 minutes)
    bench/report --only failover --update    # rerun one section into the existing report
    bench/report --render-only bench/results/report.json    # re-draw from the raw results

Sections, in the order they run (each bench alternates its own variants round by round):
  overhead   no-op throughput per engine, no agent vs ours (and, for Celery, the existing
             product's agent in its own virtualenv, set up by bench_celery_theirs.sh);
  brain      events/s stored by the brain from 1 and from 10 agents, SQLite and Postgres;
  lists      the task list API's latency with 1,000,000 tasks stored (first, filtered, deep
             pages by cursor, id search), SQLite and Postgres (bench_lists.py);
  latency    fire latency from slot to `enqueued`, per engine (bench_fire_latency.py), at half
             the no-op throughput the overhead section measured (at most 1,000/s);
  scale      scheduler load time and memory for 100,000 and 1,000,000 schedules, a herd of
             100,000 due at once (bench_scheduling.py, repeated 3 times in a full run);
  failover   leader failover on Postgres (bench_scheduler.py --only failover);
  classic    celery beat and rq-scheduler lateness against z4j's (bench_classic.py).

Each bench runs in the virtualenv its engine needs (under .venv-bench/, made on first use,
refreshed when our packages' pyproject files change; the latency benches get each engine's
interpreter for their workers) and writes its figures with `--json`
(bench/benchjson.py's shape); this script never reads a bench's printed output. It writes
report.md, report.json (every raw sample) and PNG charts to bench/results/ (a quick run to
bench/results/quick/), the bench logs and raw files to bench/results/tmp/.

A script that another part of the project has not added yet is skipped with a message, and so
is a section whose service (Redis, Postgres) is down. The machine's load average is sampled
every few seconds and reported per section: figures from a loaded machine are not figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from z4j_core.testing.engines import ENGINES as RUN_SPECS
from z4j_core.testing.stats import percentile
from z4j_core.testing.venvs import Environment, ensure

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = ROOT / ".venv-bench"
THEIRS_DIR = Path("/tmp/z4j-theirs-bench")
ENGINES = ("celery", "rq", "dramatiq", "huey", "arq", "taskiq")
# The virtualenv each engine's benches run in (Huey's needs nothing the core one lacks).
ENGINE_VENV = {**{engine: engine for engine in ENGINES}, "huey": "core"}
LOAD_SAMPLE_SECONDS = 5.0
MAX_FIRE_RATE = 1000
# 1-minute load average per CPU above which a section's figures are flagged as noisy.
BUSY_LOAD_PER_CPU = 0.5

# What the benches need besides each engine's run spec (engines.py): the core one's Postgres
# driver and croniter; rq-scheduler for the classic schedulers' bench.
BENCH_EXTRAS: dict[str, tuple[str, ...]] = {"core": ("psycopg[binary]", "croniter"),
                                            "rq": ("rq-scheduler",)}  # fmt: skip


def bench_environment(name: str) -> Environment:
    """.venv-bench/<name>: z4j-core, z4j-brain, the engine's adapter and its requirements
    (`core` is Huey's); each engine gets its own, so their pins never clash."""
    engine = RUN_SPECS["huey" if name == "core" else name]
    return Environment(
        f".venv-bench/{name}",
        ("z4j-core", "z4j-brain", engine.package),
        (*engine.requirements, *BENCH_EXTRAS.get(name, ())),
    )


@dataclass(frozen=True)
class Run:
    """One bench invocation: `python bench/<script> [--quick] <args> --json <raw>`."""

    name: str
    script: str
    venv: str
    args: tuple[str, ...] = ()
    full_args: tuple[str, ...] = ()
    repeat_full: int = 1  # full-run repetitions whose samples are pooled
    # Options naming another virtualenv's interpreter, for the workers a bench starts there:
    # (option, venv), e.g. ("--python", "celery") adds `--python .venv-bench/celery/bin/python`.
    worker_venvs: tuple[tuple[str, str], ...] = ()
    # Fire at half the no-op throughput this run measured for this engine (`--rate`).
    rate_engine: str = ""
    needs: tuple[str, ...] = ("redis",)
    optional: bool = False  # the script may not exist yet (another branch adds it)


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    runs: tuple[Run, ...]


SECTIONS: tuple[Section, ...] = (
    Section(
        "overhead",
        "Agent overhead per engine",
        tuple(Run(engine, f"bench_{engine}.py", ENGINE_VENV[engine]) for engine in ENGINES),
    ),
    Section(
        "brain",
        "Events stored by the brain",
        (Run("brain", "bench_brain_pg.py", "core", needs=("postgres",)),),
    ),
    Section(
        "lists",
        "Task list latency with a large store",
        (Run("lists", "bench_lists.py", "core", needs=("postgres",)),),
    ),
    Section(
        "latency",
        "Fire latency per engine",
        tuple(
            Run(
                f"latency-{engine}",
                "bench_fire_latency.py",
                "core",
                ("--engine", engine),
                worker_venvs=(("--python", ENGINE_VENV[engine]),),
                rate_engine=engine,
                optional=True,
            )
            for engine in ENGINES
        ),
    ),
    Section(
        "scale",
        "Scheduler scale",
        (Run("scale", "bench_scheduling.py", "core", repeat_full=3, needs=()),),
    ),
    Section(
        "failover",
        "Leader failover on Postgres",
        (
            Run(
                "failover",
                "bench_scheduler.py",
                "core",
                ("--only", "failover"),
                needs=("redis", "postgres"),
            ),
        ),
    ),
    Section(
        "classic",
        "Classic schedulers against z4j",
        (
            Run(
                "classic",
                "bench_classic.py",
                "rq",  # the driver schedules rq-scheduler's jobs itself
                worker_venvs=(("--celery-python", "celery"), ("--rq-python", "rq")),
                optional=True,
            ),
        ),
    ),
)
SECTION_NAMES = tuple(s.name for s in SECTIONS)


# -- running -----------------------------------------------------------------------------------


class LoadSampler:
    """Samples the 1-minute load average every few seconds, tagged with the running section."""

    def __init__(self) -> None:
        self.section = ""
        self.samples: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def enter(self, section: str) -> None:
        self.section = section
        self.samples.setdefault(section, []).append(os.getloadavg()[0])

    def _run(self) -> None:
        while not self._stop.wait(LOAD_SAMPLE_SECONDS):
            if self.section:
                self.samples.setdefault(self.section, []).append(os.getloadavg()[0])


def service_up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def prepare_venv(name: str) -> Path:
    """Make (or refresh) .venv-bench/<name> (venvs.py: our packages from this checkout only,
    never from the index)."""
    return ensure(bench_environment(name), root=ROOT)


def stop_theirs_server() -> None:
    """Stop the existing product's server a previous setup left running (we started it)."""
    pid_file = THEIRS_DIR / "serve.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip() or 0)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return
    if "z4j" in cmdline and "serve" in cmdline:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)


def prepare_theirs() -> list[str]:
    """bench_celery_theirs.sh: the existing product's agent and server in their own
    virtualenv (the one place the index's z4j packages are installed). Returns the extra
    arguments for bench_celery.py, or none if the setup failed."""
    stop_theirs_server()
    print(
        "[setup] the existing product's Celery agent and server (bench_celery_theirs.sh)",
        flush=True,
    )
    log = THEIRS_DIR / "setup.log"
    THEIRS_DIR.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        done = subprocess.run(
            ["bash", str(HERE / "bench_celery_theirs.sh"), str(THEIRS_DIR)],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0 or not (THEIRS_DIR / "theirs.env").exists():
        print(
            f"[setup] the existing product's setup failed (see {log}); Celery runs without "
            "the `theirs` variant",
            flush=True,
        )
        return []
    return [
        "--theirs-python",
        str(THEIRS_DIR / "venv" / "bin" / "python"),
        "--theirs-env",
        str(THEIRS_DIR / "theirs.env"),
    ]


def pooled(documents: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one bench as one document: samples of the same metric and config joined."""
    first = dict(documents[0])
    merged: dict[str, dict[str, Any]] = {}
    for document in documents:
        for result in document["results"]:
            key = json.dumps([result["metric"], result["config"], result["unit"]], sort_keys=True)
            if key in merged:
                merged[key]["samples"] = merged[key]["samples"] + result["samples"]
            else:
                merged[key] = dict(result)
    for result in merged.values():
        values = result["samples"]
        if values:  # a run with no sample (every fire missing) has no median
            result.update(median=statistics.median(values), min=min(values), max=max(values))
    first["results"] = list(merged.values())
    first["repeats"] = [{"started": d["started"], "machine": d["machine"]} for d in documents]
    return first


def run_bench(
    run: Run, *, quick: bool, python: Path, extra: Sequence[str], tmp: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Runs one bench (its output streamed with a prefix and kept in a log); returns its entry."""
    script = HERE / run.script
    entry: dict[str, Any] = {"name": run.name, "script": f"bench/{run.script}", "venv": run.venv}
    if not script.exists():
        entry.update(
            status="skipped",
            reason=f"bench/{run.script} does not exist in this checkout (it comes from "
            "another branch)",
        )
        print(f"[{run.name}] skipped: {entry['reason']}", flush=True)
        return entry
    tracked = (
        subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(script)],
            cwd=ROOT,
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    entry["script_committed"] = tracked
    repeats = 1 if quick else run.repeat_full
    documents = []
    began = time.monotonic()
    for repeat in range(repeats):
        raw = tmp / f"{run.name}-{repeat + 1}.json"
        raw.unlink(missing_ok=True)
        log = tmp / f"{run.name}-{repeat + 1}.log"
        args = [*(["--quick"] if quick else []), *run.args, *([] if quick else run.full_args)]
        command = [str(python), str(script), *args, *extra, "--json", str(raw)]
        entry.setdefault("commands", []).append(
            " ".join(
                [f".venv-bench/{run.venv}/bin/python", f"bench/{run.script}", *args, *extra]
            ).replace(f"{ROOT}/", "")
        )
        print(
            f"[{run.name}] {' '.join(command[1:])}"
            + (f"  (repeat {repeat + 1} of {repeats})" if repeats > 1 else ""),
            flush=True,
        )
        code = stream(command, log, prefix=f"[{run.name}] ", env=env)
        entry.setdefault("logs", []).append(str(log.relative_to(ROOT)))
        if code != 0 or not raw.exists():
            tail = log.read_text(errors="replace").splitlines()[-15:]
            entry.update(status="failed", reason=f"exit code {code}", log_tail=tail)
            print(f"[{run.name}] FAILED (exit code {code}); log: {log}", flush=True)
            break
        documents.append(json.loads(raw.read_text()))
    entry["seconds"] = round(time.monotonic() - began, 1)
    if documents and entry.get("status") != "failed":
        entry["status"] = "ok"
        entry["bench"] = pooled(documents)
    elif documents:
        entry["bench"] = pooled(documents)  # what finished before the failure
    return entry


def latency_rate(report: dict[str, Any], engine: str) -> int | None:
    """Half the engine's no-op throughput without agent measured earlier in this run, at most
    MAX_FIRE_RATE a second (issue 13's fire-latency workload); None if not measured here."""
    none = pick(results_of(report, "overhead"), "throughput", engine=engine, variant="none")
    if not none:
        return None
    return max(1, min(MAX_FIRE_RATE, int(none[0]["median"] / 2)))


def stream(command: list[str], log: Path, *, prefix: str, env: dict[str, str]) -> int:
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        try:
            for line in process.stdout:
                out.write(line)
                out.flush()
                print(prefix + line, end="", flush=True)
            return process.wait()
        except BaseException:
            process.send_signal(signal.SIGINT)  # a bench cleans up its workers on SIGINT
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise


def machine_facts() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        # Changes under bench/results (this report's own output) do not count.
        "dirty": bool(
            git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
        ),
    }


def run_all(options: argparse.Namespace, previous: dict[str, Any] | None) -> dict[str, Any]:
    chosen = options.only or list(SECTION_NAMES)
    sections = [s for s in SECTIONS if s.name in chosen]
    tmp = HERE / "results" / "tmp" / ("quick" if options.quick else "full")
    tmp.mkdir(parents=True, exist_ok=True)
    services = {"redis": service_up(6379), "postgres": service_up(5432)}
    report: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["bench/report", *sys.argv[1:]]),
        "quick": options.quick,
        "git": git_commit(),
        "machine": machine_facts(),
        "services": services,
        "loadavg_start": list(os.getloadavg()),
        "sections": [],
    }
    needed = {
        venv
        for section in sections
        for r in section.runs
        if (HERE / r.script).exists()
        for venv in (r.venv, *(v for _, v in r.worker_venvs))
    }
    pythons = {}
    for name in sorted(needed):
        pythons[name] = venv_python(name) if options.no_setup else prepare_venv(name)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if previous:
        keep_earlier(report, previous, chosen)
    theirs: list[str] = []
    with_theirs = "overhead" in chosen and not options.no_theirs and services["redis"]
    if with_theirs:
        theirs = prepare_theirs()
    sampler = LoadSampler()
    sampler.start()
    try:
        for section in sections:
            sampler.enter(section.name)
            print(f"\n== {section.title} ({section.name}) ==", flush=True)
            began = time.monotonic()
            section_started = datetime.now(timezone.utc).isoformat(timespec="seconds")
            entries = []
            for run in section.runs:
                down = [n for n in run.needs if not services[n]]
                if down:
                    reason = f"{' and '.join(down)} not reachable on 127.0.0.1; start it and rerun"
                    print(f"[{run.name}] skipped: {reason}", flush=True)
                    entries.append(
                        {
                            "name": run.name,
                            "script": f"bench/{run.script}",
                            "status": "skipped",
                            "reason": reason,
                        }
                    )
                    continue
                extra = list(theirs) if run.name == "celery" else []
                for option, venv in run.worker_venvs:
                    extra += [option, str(venv_python(venv))]
                if run.rate_engine:
                    rate = latency_rate(report, run.rate_engine)
                    extra += ["--rate", str(rate)] if rate else []
                entries.append(
                    run_bench(
                        run,
                        quick=options.quick,
                        python=pythons.get(run.venv, venv_python(run.venv)),
                        extra=extra,
                        tmp=tmp,
                        env=env,
                    )
                )
                if run.optional and entries[-1]["status"] == "skipped":
                    # Every run of an optional script is skipped alike: say it once.
                    entries.extend(
                        {
                            "name": r.name,
                            "script": f"bench/{r.script}",
                            "status": "skipped",
                            "reason": entries[-1]["reason"],
                        }
                        for r in section.runs[len(entries) :]
                    )
                    break
            if section.name == "overhead" and with_theirs:
                stop_theirs_server()  # its server must not share the CPUs with later sections
            sampler.enter(section.name)
            report["sections"].append(
                {
                    "name": section.name,
                    "title": section.title,
                    "started": section_started,
                    "commit": report["git"]["commit"],
                    "seconds": round(time.monotonic() - began, 1),
                    "loadavg": sampler.samples.get(section.name, []),
                    "runs": entries,
                }
            )
    except KeyboardInterrupt:
        # Keep what finished: the report says it was interrupted.
        report["interrupted"] = True
        print("\ninterrupted: writing the report of the sections that finished", flush=True)
    finally:
        sampler.stop()
        if with_theirs:
            stop_theirs_server()
    report["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report["loadavg_end"] = list(os.getloadavg())
    order = {name: index for index, name in enumerate(SECTION_NAMES)}
    report["sections"].sort(key=lambda s: order[s["name"]])
    return report


def keep_earlier(report: dict[str, Any], previous: dict[str, Any], chosen: list[str]) -> None:
    """--update: the sections this run does not run come from the earlier report (before
    running, so the latency section can read an earlier run's overhead figures)."""
    for section in previous["sections"]:
        if section["name"] not in chosen:
            section.setdefault("started", previous["started"])
            section.setdefault("commit", previous["git"]["commit"])
            report["sections"].append(section)
    report["started"] = min(previous["started"], report["started"])
    report["loadavg_start"] = previous["loadavg_start"]
    report["updated"] = [*previous.get("updated", []), report["command"]]
    report["command"] = previous["command"]


# -- rendering ---------------------------------------------------------------------------------


def results_of(report: dict[str, Any], section: str) -> list[dict[str, Any]]:
    found = []
    for entry in report["sections"]:
        if entry["name"] == section:
            for run in entry["runs"]:
                found.extend(run.get("bench", {}).get("results", []))
    return found


def pick(results: Iterable[dict[str, Any]], metric: str, **config: Any) -> list[dict[str, Any]]:
    return [
        r
        for r in results
        if r["metric"] == metric and all(r["config"].get(k) == v for k, v in config.items())
    ]


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def load_summary(samples: Sequence[float]) -> str:
    if not samples:
        return "not sampled"
    return (
        f"median {statistics.median(samples):.2f} (min {min(samples):.2f}, max {max(samples):.2f})"
    )


def busy(report: dict[str, Any], samples: Sequence[float]) -> bool:
    cpus = report["machine"].get("cpus") or 1
    return bool(samples) and statistics.median(samples) > BUSY_LOAD_PER_CPU * cpus


def overhead_rows(results: list[dict[str, Any]]) -> tuple[list[list[Any]], dict[str, Any]]:
    """The overhead table and, per engine, what the chart draws."""
    rows: list[list[Any]] = []
    chart: dict[str, Any] = {}
    for engine in ENGINES:
        runs = pick(results, "throughput", engine=engine)
        none = next((r for r in runs if r["config"]["variant"] == "none"), None)
        order = {"none": 0, "ours": 1, "theirs": 2}
        for result in sorted(
            runs, key=lambda r: (order.get(r["config"]["variant"], 3), r["config"]["variant"])
        ):
            variant = result["config"]["variant"]
            cpu = pick(results, "worker_cpu", engine=engine, variant=variant)
            ratio = f"{result['median'] / none['median']:.3f}" if none else "n/a"
            count = next(
                (v for k, v in result["config"].items() if k not in ("engine", "variant")), ""
            )
            rows.append(
                [
                    engine,
                    variant,
                    number(result["median"]),
                    number(result["min"]),
                    number(result["max"]),
                    ratio,
                    number(cpu[0]["median"]) if cpu else "",
                    len(result["samples"]),
                    f"{count:,}" if count else "",
                ]
            )
            if none and variant in ("ours", "theirs"):
                chart.setdefault(engine, {})[variant] = (
                    result["median"] / none["median"],
                    result["min"] / none["median"],
                    result["max"] / none["median"],
                )
    return rows, chart


def latency_rows(results: list[dict[str, Any]], key: str) -> list[list[Any]]:
    rows = []
    for result in results:
        samples = result["samples"]
        config = result["config"]
        rest = ", ".join(f"{k} {v}" for k, v in config.items() if k != key)
        rows.append(
            [
                config.get(key, "?"),
                rest,
                f"{len(samples):,}",
                number(percentile(samples, 0.5) if samples else None),
                number(percentile(samples, 0.99) if samples else None),
                number(result["max"] if samples else None),
                number(result["min"] if samples else None),
                result.get("missing", ""),
                result.get("doubled", ""),
            ]
        )
    return rows


def render(report: dict[str, Any], charts: dict[str, str]) -> str:
    """report.md from report.json's content and the chart files already drawn."""
    quick = report.get("quick")
    lines = ["# z4j benchmark report", ""]
    all_load = [v for s in report["sections"] for v in s.get("loadavg", [])]
    warnings = []
    if report.get("interrupted"):
        warnings.append("**Interrupted**: only the sections below finished.")
    if quick:
        warnings.append(
            "**Quick run**: reduced counts and rounds; a check that the tooling "
            "works, not figures to quote."
        )
    if busy(report, all_load):
        warnings.append(
            f"**Loaded machine**: the 1-minute load average was "
            f"{load_summary(all_load)} on {report['machine']['cpus']} CPUs while "
            "this ran (other work shared the machine); ratios and absolute "
            "figures are noisy."
        )
    lines += [f"> {w}" for w in warnings] + ([""] if warnings else [])
    git = report["git"]
    machine = report["machine"]
    lines += [
        f"- date: {report['started']} to {report.get('finished', '?')} (UTC)",
        f"- commit: `{git['commit'][:12]}` on `{git['branch']}`"
        + (" (with uncommitted changes)" if git.get("dirty") else ""),
        f"- command: `{report['command']}`",
        *(f"- then rerun, replacing its sections: `{c}`" for c in report.get("updated", [])),
        f"- machine: {machine['cpus']} CPUs ({machine.get('cpu_model', '?')}), "
        f"{machine.get('memory_gib', '?')} GiB, Linux {machine.get('kernel', '?')}, "
        f"Python {machine.get('python', '?')}",
        f"- load average (1, 5, 15 min) at start {fmt_load(report['loadavg_start'])}, "
        f"at end {fmt_load(report.get('loadavg_end', []))}",
        "- every figure: median of the rounds, with min and max; each bench alternates its "
        "variants round by round on the same machine. Raw samples: report.json.",
        "",
        "## Load during each section",
        "",
    ]
    lines += table(
        ["section", "started", "took", "1-min load average (sampled every 5 s)", "noisy?"],
        [
            [
                s["name"],
                s.get("started", "?").replace("+00:00", "Z"),
                f"{s['seconds']:.0f} s",
                load_summary(s.get("loadavg", [])),
                "yes" if busy(report, s.get("loadavg", [])) else "no",
            ]
            for s in report["sections"]
        ],
    )
    for section in report["sections"]:
        lines += render_section(report, section, charts)
    lines += notes_on_noise(report, all_load)
    lines += ["## Runs", ""]
    rows = []
    last_reason = ""
    for section in report["sections"]:
        for run in section["runs"]:
            what = "; ".join(run.get("commands", [])) or run.get("script", "")
            note = reason = run.get("reason", "")
            if reason and reason == last_reason:
                note = "as above"
            last_reason = reason
            if run.get("script_committed") is False:
                note = f"{note}; " if note else ""
                note += "the script was not committed in this checkout"
            rows.append(
                [
                    section["name"],
                    run["name"],
                    run["status"],
                    f"{run['seconds']:.0f} s" if "seconds" in run else "",
                    f"`{what}`" if what else "",
                    note,
                ]
            )
    lines += table(["section", "run", "status", "took", "command", "note"], rows)
    for section in report["sections"]:
        for run in section["runs"]:
            if run["status"] == "failed":
                lines += [f"### {run['name']} failed ({run.get('reason', '')})", "", "```"]
                lines += [*run.get("log_tail", []), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def notes_on_noise(report: dict[str, Any], load: Sequence[float]) -> list[str]:
    cpus = report["machine"].get("cpus") or 1
    notes = [
        "Each bench alternates its configurations round by round (none, ours, theirs, then "
        "the reverse), so slow drift in the machine's load hits every configuration alike; "
        "the median damps a single disturbed round, min and max show how far rounds spread.",
        f"A section is marked noisy when the median 1-minute load average during it exceeded "
        f"{BUSY_LOAD_PER_CPU} per CPU ({BUSY_LOAD_PER_CPU * cpus:g} here): the load average "
        "counts this run's own workers, Redis and brains too, so a busy bench raises it "
        "itself; above the number of CPUs, other work was competing.",
    ]
    _, chart = overhead_rows(results_of(report, "overhead"))
    above = [e for e, c in chart.items() if "ours" in c and c["ours"][0] > 1.0]
    if above:
        notes.append(
            f"A ratio above 1 ({', '.join(above)}) means the rounds' spread is larger than "
            "the agent's cost: read those as 'no measurable overhead at this noise', and "
            "rerun on a quiet machine for a figure."
        )
    if report.get("quick"):
        notes.append(
            "A quick run has 2 or 3 rounds per configuration: a median of two rounds is their "
            "mean, so one disturbed round moves it."
        )
    if load and statistics.median(load) > cpus:
        notes.append(
            f"The load average stayed above the {cpus} CPUs for most of this run: every "
            "figure here is a lower bound on what the machine can do, and ratios between "
            "configurations are only indicative."
        )
    return ["## Notes on noise", "", *(f"- {n}" for n in notes), ""]


def fmt_load(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values) if values else "?"


def render_section(
    report: dict[str, Any], section: dict[str, Any], charts: dict[str, str]
) -> list[str]:
    name = section["name"]
    results = [r for run in section["runs"] for r in run.get("bench", {}).get("results", [])]
    lines = [f"## {section['title']}", ""]
    load = section.get("loadavg", [])
    lines += [
        f"Load average during this section: {load_summary(load)}"
        + (" — **noisy**" if busy(report, load) else "")
        + ".",
        "",
    ]
    skipped = [r for r in section["runs"] if r["status"] == "skipped"]
    if skipped and not results:
        lines += [f"Not measured: {skipped[0]['reason']}.", ""]
        return lines
    shown: set[str] = set()
    if name == "overhead":
        rows, _ = overhead_rows(results)
        lines += table(
            [
                "engine",
                "variant",
                "median tasks/s",
                "min",
                "max",
                "ratio to none",
                "worker CPU µs/task",
                "rounds",
                "tasks per round",
            ],
            rows,
        )
        lines += [
            "`ours` is z4j's agent as shipped; `theirs` the existing product's agent "
            "(z4j-celery 1.13 from the package index, worker with `-E`). arq's "
            "`ours-loop` and `ours-roundtrip` are that bench's design alternatives. "
            "The ratio is median over median; min and max are the variant's own rounds.",
            "",
        ]
        shown |= {"throughput", "worker_cpu"}
    elif name == "brain":
        rows = []
        for r in pick(results, "events_stored"):
            store, agents = r["config"].get("store"), r["config"].get("agents")
            limit = pick(results, "raw_insert_limit", store=store)
            cpu = pick(results, "brain_cpu_per_event", store=store, agents=agents)
            rows.append(
                [
                    store,
                    agents,
                    number(r["median"]),
                    number(r["min"]),
                    number(r["max"]),
                    len(r["samples"]),
                    f"{r['config'].get('events', 0):,}",
                    number(limit[0]["median"]) if limit else "-",
                    f"{r['median'] / limit[0]['median']:.2f}" if limit else "-",
                    number(cpu[0]["median"]) if cpu else "-",
                ]
            )
        lines += table(
            ["store", "agents", "median events/s", "min", "max", "runs", "events per run",
             "limit events/s", "ratio to limit", "brain CPU µs/event"],
            rows,
        )  # fmt: skip
        lines += [
            "Stored and acknowledged, from the first emit to the last acknowledgement; "
            "each agent is its own process. The limit is the same rows (same keys, one task "
            "per event) inserted straight into a brain's schema, 1,000 a transaction, by the "
            "store's fastest plain path (binary COPY on Postgres, executemany on SQLite), with "
            "no agent, socket or decoding: the ratio to it is the figure that counts. Brain CPU "
            "is the brain process's user + system time over the three runs, per event.",
            "",
        ]
        shown |= {"raw_insert_limit", "brain_cpu_per_event"}
        shown.add("events_stored")
    elif name == "lists":
        chosen = pick(results, "list_latency")
        rows = [
            [
                r["config"].get("store"),
                r["config"].get("query"),
                f"{r['config'].get('tasks', 0):,}",
                len(r["samples"]),
                number(percentile(r["samples"], 0.5)),
                number(percentile(r["samples"], 0.99)),
                number(r["max"]),
            ]
            for r in chosen
        ]
        lines += table(["store", "query", "tasks", "requests", "p50 ms", "p99 ms", "max ms"], rows)
        lines += [
            "`GET /api/v1/tasks` over a kept-alive connection to a real brain, 100 rows a page; "
            "deep pages start at a cursor in the older half of the list; `scoped` is an "
            "operator who sees half the apps. The target is under 300 ms.",
            "",
        ]
        shown.add("list_latency")
    elif name in ("latency", "classic"):
        key = "engine" if name == "latency" else "scheduler"
        chosen = [r for r in results if key in r["config"] and r["unit"] == "ms"]
        lines += table(
            [
                key,
                "config",
                "fires",
                "p50 ms",
                "p99 ms",
                "max ms",
                "min ms",
                "slots missing",
                "doubled",
            ],
            latency_rows(chosen, key),
        )
        shown |= {r["metric"] for r in chosen}
        if name == "latency":
            lines += [
                "From each slot to the brain recording the agent's `enqueued` answer; the "
                "schedules are spread over the second at half the engine's no-op throughput "
                "without agent measured by this run's overhead section (at most 1,000 a "
                "second), or the bench's default rate when that section did not run.",
                "",
            ]
        else:
            lines += [
                "The same workload for each scheduler; how each one's lateness is taken (its "
                "own due instant to the task on the broker, or for z4j the slot to the "
                "brain recording `enqueued`) is in bench/bench_classic.py's docstring.",
                "",
            ]
    elif name == "scale":
        rows = []
        for result in pick(results, "load_time"):
            count = result["config"]["schedules"]
            memory = pick(results, "memory", schedules=count, part="all")
            queue = pick(results, "memory", schedules=count, part="queue")
            rows.append(
                [
                    f"{count:,}",
                    number(result["median"]),
                    number(result["min"]),
                    number(result["max"]),
                    number(memory[0]["median"]) if memory else "",
                    f"{number(memory[0]['min'])}-{number(memory[0]['max'])}" if memory else "",
                    number(queue[0]["median"]) if queue else "",
                    len(result["samples"]),
                ]
            )
        lines += table(
            [
                "schedules",
                "load s (median)",
                "min",
                "max",
                "memory MiB (median)",
                "min-max",
                "of which the due queue",
                "runs",
            ],
            rows,
        )
        for herd in pick(results, "herd_pop"):
            count = herd["config"]["schedules"]
            dropped = pick(results, "herd_dropped", schedules=count)
            lines += [
                f"Herd: {count:,} schedules due at one instant popped in "
                f"{number(herd['median'])} s (min {number(herd['min'])}, max "
                f"{number(herd['max'])}, {len(herd['samples'])} runs); slots dropped: "
                f"{number(max(dropped[0]['samples'])) if dropped else '?'}.",
                "",
            ]
        lines += [
            "Load time is the due queue computing every schedule's first slot (70% "
            "cron, 20% interval, 8% one-shot, 2% solar, five zones); memory is the "
            "resident memory grown by the schedule values and the queue.",
            "",
        ]
        shown |= {"load_time", "memory", "herd_pop", "herd_dropped"}
    elif name == "failover":
        for result in pick(results, "failover"):
            twice = pick(results, "failover_slots_run_twice")
            missing = pick(results, "failover_slots_missing")
            lines += table(
                [
                    "SIGKILLs of the leader",
                    "median s",
                    "min s",
                    "max s",
                    "slots run twice",
                    "slots missing",
                ],
                [
                    [
                        len(result["samples"]),
                        number(result["median"]),
                        number(result["min"]),
                        number(result["max"]),
                        number(twice[0]["median"]) if twice else "?",
                        number(missing[0]["median"]) if missing else "?",
                    ]
                ],
            )
        lines += [
            "From the SIGKILL of the leading brain to the first fire written by the "
            "new leader (two brains on one Postgres, a per-second schedule).",
            "",
        ]
        shown |= {"failover", "failover_slots_run_twice", "failover_slots_missing"}
    others = [r for r in results if r["metric"] not in shown]
    if others:
        lines += ["Other figures from these runs:", ""]
        lines += table(
            ["metric", "config", "unit", "median", "min", "max", "n"],
            [
                [
                    r["metric"],
                    ", ".join(f"{k} {v}" for k, v in r["config"].items()),
                    r["unit"],
                    number(r["median"]),
                    number(r["min"]),
                    number(r["max"]),
                    len(r["samples"]),
                ]
                for r in others
            ],
        )
    for chart in SECTION_CHARTS.get(name, ()):
        if chart in charts:
            lines += [f"![{chart}]({charts[chart]})", ""]
    if skipped:
        lines += [f"Skipped: {', '.join(r['name'] for r in skipped)} ({skipped[0]['reason']}).", ""]
    return lines


SECTION_CHARTS = {
    "overhead": ("overhead",),
    "brain": ("brain_events",),
    "latency": ("fire_latency",),
    "classic": ("classic",),
}


def draw_charts(report: dict[str, Any], out: Path) -> dict[str, str]:
    """PNG charts next to report.md; returns chart name -> file name. Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        print("matplotlib is not installed here: no charts (bench/report installs it)", flush=True)
        return {}
    drawn: dict[str, str] = {}
    all_load = [v for s in report["sections"] for v in s.get("loadavg", [])]
    subtitle = (
        ("quick run, " if report.get("quick") else "")
        + ("loaded machine, " if busy(report, all_load) else "")
        + report["started"][:10]
    )

    _, chart = overhead_rows(results_of(report, "overhead"))
    if chart:
        figure, axes = plt.subplots(figsize=(9, 4.8))
        engines = list(chart)
        width = 0.38
        for side, variant, colour in ((-1, "ours", "#2a7ab9"), (1, "theirs", "#d9822b")):
            # Side by side where an engine has both agents, centred where it has ours only.
            xs = [
                i + (side * width / 2 if len(chart[e]) > 1 else 0.0)
                for i, e in enumerate(engines)
                if variant in chart[e]
            ]
            if not xs:
                continue
            values = [chart[e][variant] for e in engines if variant in chart[e]]
            medians = [v[0] for v in values]
            errors = [
                [max(0.0, v[0] - v[1]) for v in values],
                [max(0.0, v[2] - v[0]) for v in values],
            ]
            label = "z4j agent" if variant == "ours" else "existing product's agent"
            axes.bar(xs, medians, width, yerr=errors, capsize=4, color=colour, label=label)
            for x, value in zip(xs, values, strict=True):
                axes.annotate(
                    f"{value[0]:.2f}",
                    (x, value[2]),  # above the error bar
                    textcoords="offset points",
                    xytext=(0, 3),
                    ha="center",
                    fontsize=8,
                )
        axes.axhline(1.0, color="black", linewidth=0.8)
        axes.axhline(0.97, color="grey", linewidth=0.8, linestyle="--", label="target 0.97")
        axes.set_xticks(range(len(engines)), engines)
        axes.set_ylabel("throughput with agent / without (median)")
        axes.set_title(f"Agent overhead on no-op tasks (bars: min-max rounds) — {subtitle}")
        axes.set_ylim(0, max(1.1, *(v[2] for c in chart.values() for v in c.values())) * 1.2)
        axes.legend(loc="upper right", fontsize=8, ncol=3)
        drawn["overhead"] = save(figure, out / "overhead.png")

    brain = pick(results_of(report, "brain"), "events_stored")
    if brain:
        figure, axes = plt.subplots(figsize=(8, 4.5))
        stores = sorted({r["config"]["store"] for r in brain})
        counts = sorted({r["config"]["agents"] for r in brain})
        width = 0.8 / len(counts)
        for n, agents in enumerate(counts):
            rows = [
                next(
                    (
                        r
                        for r in brain
                        if r["config"]["store"] == s and r["config"]["agents"] == agents
                    ),
                    None,
                )
                for s in stores
            ]
            xs = [i - 0.4 + width * (n + 0.5) for i, r in enumerate(rows) if r]
            found = [r for r in rows if r]
            axes.bar(
                xs,
                [r["median"] for r in found],
                width,
                yerr=[
                    [r["median"] - r["min"] for r in found],
                    [r["max"] - r["median"] for r in found],
                ],
                capsize=4,
                label=f"{agents} agent{'s' if agents > 1 else ''}",
            )
        axes.set_xticks(range(len(stores)), stores)
        axes.set_ylabel("events stored per second (median)")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axes.set_title(f"Brain ingest (bars: min-max runs) — {subtitle}")
        axes.legend(fontsize=8)
        drawn["brain_events"] = save(figure, out / "brain_events.png")

    for name, section, key, title in (
        ("fire_latency", "latency", "engine", "Fire latency, slot to enqueued"),
        ("classic", "classic", "scheduler", "Fire lateness: classic schedulers and z4j"),
    ):
        series = [
            r for r in results_of(report, section) if key in r["config"] and r["unit"] == "ms"
        ]
        if not any(r["samples"] for r in series):
            continue
        figure, axes = plt.subplots(figsize=(8, 4.8))
        for result in series:
            details = [
                config_words(k, v)
                for k, v in result["config"].items()
                if k not in (key, "schedules", "seconds")
            ]
            if not result["samples"]:  # said in the legend, with nothing to draw
                axes.plot([], [], " ", label=f"{result['config'][key]} ({', '.join(details)}): "
                          "no fire")  # fmt: skip
                continue
            values = sorted(max(v, 0.01) for v in result["samples"])
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            label = (
                f"{result['config'][key]} ({', '.join(details)}{', ' if details else ''}"
                f"p50 {number(percentile(values, 0.5))} ms, "
                f"p99 {number(percentile(values, 0.99))} ms, n={len(values):,})"
            )
            axes.step(values, fractions, where="post", label=label)
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.set_xlabel("ms (log scale)")
        axes.set_ylabel("fraction of fires")
        axes.set_ylim(0, 1.02)
        axes.grid(True, which="both", alpha=0.3)
        axes.set_title(f"{title} — {subtitle}")
        longest = max(len(line.get_label()) for line in axes.get_lines())
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13),
                    ncol=1 if longest > 60 else 2)  # fmt: skip
        drawn[name] = save(figure, out / f"{name}.png")
    plt.close("all")
    return drawn


def config_words(key: str, value: Any) -> str:
    """A config entry as a chart label says it: `500/s`, `every 60 s`, `into celery`."""
    if key == "rate_per_s":
        return f"{value:g}/s"
    if key == "period_s":
        return f"every {value:g} s"
    if key == "engine":
        return f"into {value}"
    return f"{key} {value}"


def save(figure: Any, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")  # legends may sit outside the axes
    return path.name


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=1)
    # Lists of numbers (the samples) on one line each: readable, and a tenth of the size.
    text = re.sub(r"\[[-\d\s.,eE+]*\]", lambda match: re.sub(r"\s+", "", match[0]), text)
    (out / "report.json").write_text(text + "\n")
    charts = draw_charts(report, out)
    (out / "report.md").write_text(render(report, charts))
    print(
        f"\nwrote {out / 'report.md'}, {out / 'report.json'}"
        + "".join(f", {out / c}" for c in charts.values()),
        flush=True,
    )


def sections_option(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTION_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section {', '.join(unknown) or repr(text)}; "
            f"choose from {', '.join(SECTION_NAMES)} (comma-separated)"
        )
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=f"sections: {', '.join(SECTION_NAMES)}",
    )
    parser.add_argument("--quick", action="store_true", help="reduced counts (minutes, not hours)")
    parser.add_argument(
        "--only",
        type=sections_option,
        action="extend",
        metavar="SECTION",
        help="run only these sections (comma-separated, repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where the report goes (default bench/results, bench/results/quick with --quick)",
    )
    parser.add_argument(
        "--no-setup", action="store_true", help="use .venv-bench/* as they are (no pip)"
    )
    parser.add_argument(
        "--no-theirs",
        action="store_true",
        help="skip the existing product's Celery agent (no package index)",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the other sections of the report.json already at --out (rerun one section)",
    )
    parser.add_argument(
        "--render-only",
        type=Path,
        metavar="REPORT_JSON",
        help="re-draw report.md and the charts from a report.json",
    )
    options = parser.parse_args(argv)
    if options.render_only:
        if not options.render_only.exists():
            parser.error(
                f"{options.render_only} does not exist; give a report.json "
                "written by a run of bench/report"
            )
        report = json.loads(options.render_only.read_text())
        write_report(report, options.out or options.render_only.parent)
        return 0
    if options.out is None:
        options.out = HERE / "results" / ("quick" if options.quick else "")
        options.out = options.out.resolve()
    previous_path = options.out / "report.json"
    if options.update and not previous_path.exists():
        parser.error(f"--update: {previous_path} does not exist; run without --update first")
    previous = json.loads(previous_path.read_text()) if options.update else None
    report = run_all(options, previous)
    write_report(report, options.out)
    failed = [r["name"] for s in report["sections"] for r in s["runs"] if r["status"] == "failed"]
    if failed:
        print(f"failed: {', '.join(failed)} (their logs are listed in the report)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
