"""Print the closing lines for the whole test command from the sessions' JUnit reports: each
failed test with the head of its message (so a cut log still says what broke), then one total."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

MESSAGE_LINES = 6
LINE_WIDTH = 300


def failures(case: ET.Element) -> list[str]:
    lines = []
    for outcome in case:
        if outcome.tag not in ("failure", "error"):
            continue
        text = outcome.get("message") or outcome.text or ""
        lines += [line[:LINE_WIDTH] for line in text.strip().splitlines()[:MESSAGE_LINES]]
    return lines


def main(folder: str) -> int:
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for report in sorted(Path(folder).glob("*.xml")):
        root = ET.parse(report).getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites:
            for key in totals:
                totals[key] += int(suite.get(key, 0))
            for case in suite.iter("testcase"):
                if lines := failures(case):
                    print(f"FAILED [{report.stem}] {case.get('classname')}::{case.get('name')}")
                    print("\n".join(f"    {line}" for line in lines))
    failed = totals["failures"] + totals["errors"]
    passed = totals["tests"] - failed - totals["skipped"]
    print(f"total: {passed} passed, {failed} failed, {totals['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".nox-reports"))
