"""bench/report.py's renderer on a canned report: the tables, ratios, percentiles and warnings
it writes, the samples it pools across repeats, and the charts it draws. No bench runs here and
nothing is timed."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_report_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module
    spec.loader.exec_module(module)
    return module


report_py = load_report_module()


def result(metric: str, unit: str, samples: list[float], **config: Any) -> dict[str, Any]:
    return {
        "metric": metric,
        "config": config,
        "unit": unit,
        "median": sorted(samples)[len(samples) // 2],
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
    }


def run(name: str, results: list[dict[str, Any]], status: str = "ok") -> dict[str, Any]:
    return {
        "name": name,
        "script": f"bench/bench_{name}.py",
        "status": status,
        "seconds": 12.0,
        "commands": [f"python bench/bench_{name}.py --quick"],
        "bench": {"bench": name, "results": results},
    }


def canned(*, quick: bool, load: float) -> dict[str, Any]:
    latencies = [float(v) for v in range(1, 101)]  # 1..100 ms: p50 51, p99 100
    return {
        "started": "2026-11-26T01:00:00+00:00",
        "finished": "2026-11-26T01:30:00+00:00",
        "command": "bench/report" + (" --quick" if quick else ""),
        "quick": quick,
        "git": {"commit": "0123456789abcdef", "branch": "main", "dirty": False},
        "machine": {
            "cpus": 2,
            "cpu_model": "test cpu",
            "memory_gib": 24,
            "kernel": "6",
            "python": "3.11.7",
        },
        "services": {"redis": True, "postgres": True},
        "loadavg_start": [load, load, load],
        "loadavg_end": [load, load, load],
        "sections": [
            {
                "name": "overhead",
                "title": "Agent overhead per engine",
                "seconds": 100.0,
                "started": "2026-11-26T01:00:00+00:00",
                "loadavg": [load, load],
                "runs": [
                    run(
                        "celery",
                        [
                            result(
                                "throughput",
                                "tasks/s",
                                [1000.0, 990.0, 1010.0],
                                engine="celery",
                                variant="none",
                                tasks=2000,
                            ),
                            result(
                                "throughput",
                                "tasks/s",
                                [970.0, 960.0, 980.0],
                                engine="celery",
                                variant="ours",
                                tasks=2000,
                            ),
                            result(
                                "throughput",
                                "tasks/s",
                                [500.0, 450.0, 520.0],
                                engine="celery",
                                variant="theirs",
                                tasks=2000,
                            ),
                            result(
                                "worker_cpu",
                                "us/task",
                                [42.0],
                                engine="celery",
                                variant="ours",
                                tasks=2000,
                            ),
                            result("worker_rss", "MiB", [80.0], engine="celery", variant="ours"),
                        ],
                    )
                ],
            },
            {
                "name": "brain",
                "title": "Events stored by the brain",
                "seconds": 50.0,
                "loadavg": [load],
                "runs": [
                    run(
                        "brain_pg",
                        [
                            result(
                                "events_stored",
                                "events/s",
                                [20000.0, 21000.0, 19000.0],
                                store="postgres",
                                agents=10,
                                events=100000,
                            ),
                        ],
                    )
                ],
            },
            {
                "name": "latency",
                "title": "Fire latency per engine",
                "seconds": 1.0,
                "loadavg": [load],
                "runs": [
                    run(
                        "latency-huey",
                        [
                            # The latency bench's own extra fields: slots missing, doubled.
                            {
                                **result(
                                    "fire_latency",
                                    "ms",
                                    latencies,
                                    engine="huey",
                                    schedules=1000,
                                    rate_per_s=1000,
                                ),
                                "missing": 0,
                                "doubled": 1,
                            },
                            # An engine none of whose fires was enqueued: no median at all.
                            {
                                "metric": "fire_latency",
                                "config": {"engine": "rq", "schedules": 10, "rate_per_s": 10},
                                "unit": "ms",
                                "median": None,
                                "min": None,
                                "max": None,
                                "samples": [],
                                "missing": 100,
                                "doubled": 0,
                            },
                        ],
                    )
                ],
            },
            {
                "name": "classic",
                "title": "Classic schedulers against z4j",
                "seconds": 0.0,
                "loadavg": [],
                "runs": [
                    {
                        "name": "classic",
                        "script": "bench/bench_classic.py",
                        "status": "skipped",
                        "reason": "bench/bench_classic.py does not exist",
                    }
                ],
            },
        ],
    }


def test_tables_carry_medians_ranges_and_ratios_to_no_agent() -> None:
    text = report_py.render(canned(quick=False, load=0.1), {})
    assert "| celery | none | 1,000 | 990 | 1,010 | 1.000 |" in text
    assert "| celery | ours | 970 | 960 | 980 | 0.970 | 42.0 | 3 | 2,000 |" in text
    assert "| celery | theirs | 500 | 450 | 520 | 0.500 |" in text
    assert "| postgres | 10 | 20,000 | 19,000 | 21,000 | 3 | 100,000 |" in text
    # p50 and p99 come from every fire's latency, not from the summary fields.
    assert (
        "| huey | schedules 1000, rate_per_s 1000 | 100 | 51.0 | 100 | 100 | 1.00 | 0 | 1 |" in text
    )
    assert "| rq | schedules 10, rate_per_s 10 | 0 | - | - | - | - | 100 | 0 |" in text
    assert "Not measured: bench/bench_classic.py does not exist." in text
    assert "worker_rss" in text  # a figure no table knows is still listed
    assert "commit: `0123456789ab` on `main`" in text


def test_the_list_latency_table_has_each_store_and_query() -> None:
    report = canned(quick=False, load=0.1)
    latencies = [float(v) for v in range(1, 101)]
    report["sections"].append(
        {
            "name": "lists",
            "title": "Task list latency with a large store",
            "seconds": 60.0,
            "started": "2026-11-26T01:20:00+00:00",
            "loadavg": [0.1],
            "runs": [
                run(
                    "lists",
                    [
                        result("list_latency", "ms", latencies, store=store, tasks=1_000_000,
                               query=query)
                        for store in ("sqlite", "postgres")
                        for query in ("first page", "deep page (cursor)")
                    ],
                )
            ],
        }
    )  # fmt: skip
    text = report_py.render(report, {})
    assert "## Task list latency with a large store" in text
    assert "| sqlite | first page | 1,000,000 | 100 | 51.0 | 100 | 100 |" in text
    assert "| postgres | deep page (cursor) | 1,000,000 | 100 | 51.0 | 100 | 100 |" in text
    assert "list_latency" not in text  # every figure is in the table, none left over


def test_a_quick_run_on_a_loaded_machine_says_so() -> None:
    quiet = report_py.render(canned(quick=False, load=0.1), {})
    assert "Quick run" not in quiet and "Loaded machine" not in quiet
    loaded = report_py.render(canned(quick=True, load=3.5), {})
    assert "**Quick run**" in loaded
    assert "**Loaded machine**" in loaded and "median 3.50" in loaded
    assert (
        "| overhead | 2026-11-26T01:00:00Z | 100 s | median 3.50 (min 3.50, max 3.50) | yes |"
        in loaded
    )


def test_repeats_pool_their_samples() -> None:
    first = {
        "bench": "scale",
        "started": "a",
        "machine": {},
        "results": [
            result("load_time", "s", [1.0], schedules=100),
            result("memory", "MiB", [5.0], part="all"),
        ],
    }
    second = {
        "bench": "scale",
        "started": "b",
        "machine": {},
        "results": [
            result("load_time", "s", [3.0], schedules=100),
            result("load_time", "s", [9.0], schedules=1000),
        ],
    }
    merged = report_py.pooled([first, second])
    by_key = {(r["metric"], json.dumps(r["config"])): r for r in merged["results"]}
    pooled = by_key[("load_time", '{"schedules": 100}')]
    assert pooled["samples"] == [1.0, 3.0]
    assert (pooled["median"], pooled["min"], pooled["max"]) == (2.0, 1.0, 3.0)
    assert by_key[("load_time", '{"schedules": 1000}')]["samples"] == [9.0]
    assert [r["started"] for r in merged["repeats"]] == ["a", "b"]


def test_an_unknown_section_is_refused_with_the_choices() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="unknown section overheat; choose"):
        report_py.sections_option("overheat")
    assert report_py.sections_option("overhead, scale") == ["overhead", "scale"]


def test_charts_are_drawn_and_linked(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = canned(quick=True, load=3.5)
    charts = report_py.draw_charts(report, tmp_path)
    assert set(charts) == {"overhead", "brain_events", "fire_latency"}
    for name in charts.values():
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    text = report_py.render(report, charts)
    assert "![overhead](overhead.png)" in text
    assert "![fire_latency](fire_latency.png)" in text


def test_fire_rate_is_half_the_measured_no_agent_throughput_capped_at_1000() -> None:
    report = canned(quick=True, load=0.1)
    assert report_py.latency_rate(report, "celery") == 500  # median without agent: 1,000/s
    report["sections"][0]["runs"][0]["bench"]["results"].append(
        result("throughput", "tasks/s", [5000.0], engine="huey", variant="none")
    )
    assert report_py.latency_rate(report, "huey") == 1000
    assert report_py.latency_rate(report, "arq") is None  # not measured in this run
