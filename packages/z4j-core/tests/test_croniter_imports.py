"""Who may import croniter and astral. The scheduler core parses cron and computes the sun
itself; croniter is imported only by the conformance suite's oracle and by the one adapter
module that reproduces engines which evaluate their crons with croniter themselves (`rq cron`
and rq-scheduler); astral only by the solar tests' independent oracle. Every other next-run
computation goes through `z4j_core.scheduling`, so that z4j's rules are written once."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGES = Path(__file__).resolve().parents[2]


def _importing(module: str) -> set[str]:
    pattern = re.compile(rf"^\s*(from {module}\b|import {module}\b)", re.MULTILINE)
    return {
        str(path.relative_to(PACKAGES))
        for path in PACKAGES.glob("*/src/**/*.py")
        if pattern.search(path.read_text())
    }


def test_only_the_conformance_oracle_and_rq_schedules_import_croniter() -> None:
    importing = _importing("croniter")
    assert importing == {
        "z4j-core/src/z4j_core/testing/conformance.py",
        "z4j-rq/src/z4j_rq/schedules.py",
    }, sorted(importing)


def test_only_the_solar_oracle_imports_astral() -> None:
    assert _importing("astral") == {"z4j-core/src/z4j_core/testing/solar_oracle.py"}
