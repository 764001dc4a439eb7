"""Which combinations of the umbrella's extras resolve, with the engines' own pins.

Our packages are replaced by their third-party requirements (they are never looked up on the
index), and each combination is resolved with `uv pip compile` for the lowest Python we
support. Every single extra and `all` must resolve; the matrix of pairs is printed, so a pair
that stops resolving (engines pinning incompatible redis clients, say) shows up here first.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from localdist import PACKAGE_DIRS, normalize, project_table

pytestmark = [pytest.mark.network, pytest.mark.timeout(900)]

OURS = {normalize(str(project_table(d)["name"])): d for d in PACKAGE_DIRS}


def _name(requirement: str) -> str:
    for stop in "[=<>!~;@ ":
        requirement = requirement.split(stop, maxsplit=1)[0]
    return normalize(requirement)


def third_party(requirements: list[str], seen: set[str] | None = None) -> set[str]:
    """Our requirements replaced by theirs, recursively (extras of ours followed too)."""
    seen = set() if seen is None else seen
    found: set[str] = set()
    for requirement in requirements:
        name = _name(requirement)
        if name not in OURS:
            found.add(requirement)
            continue
        key = requirement
        if key in seen:
            continue
        seen.add(key)
        project = project_table(OURS[name])
        found |= third_party(list(project.get("dependencies", [])), seen)  # type: ignore[call-overload]
        if "[" in requirement:
            extras = requirement.split("[", 1)[1].split("]", 1)[0].split(",")
            optional = dict(project.get("optional-dependencies", {}))  # type: ignore[call-overload]
            for extra in extras:
                found |= third_party(list(optional.get(extra.strip(), [])), seen)
    return found


EXTRAS = sorted(dict(project_table(PACKAGE_DIRS[0]).get("optional-dependencies", {})))  # type: ignore[call-overload]


def resolves(extras: tuple[str, ...]) -> tuple[bool, str]:
    requirements = third_party([f"z4j[{','.join(extras)}]"])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "uv",
            "pip",
            "compile",
            "-",
            "--python-version",
            "3.10",
            "--no-header",
            "--quiet",
        ],
        input="\n".join(sorted(requirements)) + "\n",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return result.returncode == 0, result.stderr.strip()


@pytest.mark.parametrize("extra", [*EXTRAS])
def test_each_extra_resolves_on_its_own(extra: str) -> None:
    ok, error = resolves((extra,))
    assert ok, f"z4j[{extra}] does not resolve: {error}"


def test_matrix_of_pairs_and_all(capsys: pytest.CaptureFixture[str]) -> None:
    engines = [e for e in EXTRAS if e != "all"]
    rows = []
    for pair in itertools.combinations(engines, 2):
        ok, _ = resolves(pair)
        rows.append(f"  z4j[{','.join(pair)}]: {'resolves' if ok else 'DOES NOT resolve'}")
    with capsys.disabled():
        print("\nextras combinations (Python 3.10):\n" + "\n".join(rows or ["  (one engine)"]))
    if "all" in EXTRAS:
        ok, error = resolves(("all",))
        assert ok, f"z4j[all] does not resolve: {error}"
