"""Fuzzing the brain's HTTP API with schemathesis, driven by the brain's own OpenAPI document,
against a real brain process while a well-behaved agent streams events beside it.

Every operation of the document gets generated requests (valid and invalid bodies, parameters
and headers) with the admin token; each answer must be no server error, a status code the
document declares, the declared content type and a body matching the declared schema, and a
request without the token must be refused (schemathesis's ``ignored_auth``). The last test
checks that the agent lost nothing and prints the figures.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest

from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.hostile import Arena, examples

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402

STATUSES: collections.Counter[tuple[str, int]] = collections.Counter()
FIGURES: dict[str, Any] = {}
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.ignored_auth,
]


@pytest.fixture(scope="module")
def http_arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    workdir = tmp_path_factory.mktemp("http-fuzz")
    # schemathesis's ignored_auth check sends requests without the token on purpose; a high
    # limit keeps this address from being rate limited (the limiter has its own tests).
    brain = BrainProcess(workdir / "brain", env={"Z4J_AUTH_FAILURE_LIMIT": "1000000"})
    arena = Arena(brain)
    try:
        steady = brain.create_token("steady")
        brain.start()
        arena.start(steady, workdir / "spool")
        FIGURES["rss_before_kib"] = arena.rss_kib()
        yield arena
    finally:
        arena.kill()
        brain.stop()


@pytest.fixture(scope="module")
def api_schema(http_arena: Arena) -> Any:
    url = http_arena.brain.http_url
    return schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")


def operations() -> list[tuple[str, str]]:
    """(label, generation mode) of every operation of the brain's document (the fixture reads
    the served one). An operation with no parameters, body or token has nothing to make
    invalid: it gets positive inputs only."""
    from z4j_brain.openapi import openapi_document

    document = openapi_document("collect")
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            found.append((label, "positive"))
            if (
                operation.get("parameters")
                or operation.get("requestBody")
                or (operation.get("security", document["security"]))
            ):
                found.append((label, "negative"))
    return found


def shorten_waits(case: Any) -> None:
    """A long poll (``wait``, ``timeout``) only slows the fuzz down: a positive finite value is
    sent as 0; every other value (negative, NaN, infinite, not a number) as generated."""
    if case.path.endswith("/scheduler/applied") and "timeout" not in (case.query or {}):
        case.query = {**(case.query or {}), "timeout": 0}  # its default is 5 s
    for name in ("wait", "timeout"):
        value = (case.query or {}).get(name)
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if 0 < number < float("inf"):
            case.query[name] = 0


@pytest.mark.parametrize(("label", "mode"), operations())
def test_every_operation_answers_as_documented(
    label: str, mode: str, api_schema: Any, http_arena: Arena
) -> None:
    operation = api_schema.find_operation_by_label(label)
    url = http_arena.brain.http_url
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

    @given(strategy)
    @settings(
        max_examples=examples(15),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        shorten_waits(case)
        response = case.call(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60
        )
        STATUSES[(label, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    before = http_arena.stored()
    fuzz()
    http_arena.assert_serving(before)


def test_zz_the_steady_agent_lost_nothing(http_arena: Arena) -> None:
    """Runs last in this module (pytest keeps file order)."""
    before = http_arena.stored()
    http_arena.assert_serving(before)
    rss_after = http_arena.rss_kib()
    polls = http_arena.polls
    summary = http_arena.finish()
    assert summary["dropped"] == 0 and summary["acked"] == summary["emitted"], summary
    assert http_arena.stored() == summary["emitted"]
    print(f"\nhostile HTTP fuzz: {sum(STATUSES.values())} generated requests")
    by_operation: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for (operation, status), count in STATUSES.items():
        by_operation[operation][status] += count
    for operation in sorted(by_operation):
        answers = ", ".join(f"{s}: {n}" for s, n in sorted(by_operation[operation].items()))
        print(f"  {operation:45s} {answers}")
    print(f"  steady agent: {summary['emitted']} events emitted, all stored, 0 dropped")
    print(f"  /healthz polled {polls} times, every answer 200")
    print(f"  brain RSS: {FIGURES['rss_before_kib']} KiB before, {rss_after} KiB after")
