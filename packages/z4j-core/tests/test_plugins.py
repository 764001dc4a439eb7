"""Adapters are discovered by entry point and validated; a broken one is reported by name and
does not stop the others."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from z4j_core.plugins import load_adapters

GROUP = "z4j.test-adapters"

GOOD = """
from z4j_core.hookspecs import hookimpl

@hookimpl
def z4j_engine_name():
    return "{engine}"

@hookimpl
def z4j_registered_tasks(adapter):
    if adapter.engine != "{engine}":
        return None
    return ["{engine}.task"]
"""

MISSPELLED_HOOK = """
from z4j_core.hookspecs import hookimpl

@hookimpl
def z4j_engine_name():
    return "misspelled"

@hookimpl
def z4j_enqueue_task(adapter, request):
    return None
"""

WRONG_ARGUMENT = """
from z4j_core.hookspecs import hookimpl

@hookimpl
def z4j_engine_name():
    return "wrongarg"

@hookimpl
def z4j_enqueue(adapter, request, surprise):
    return None
"""

IMPORT_ERROR = """
import engine_that_is_not_installed
"""

NO_ENGINE_NAME = """
from z4j_core.hookspecs import hookimpl

@hookimpl
def z4j_registered_tasks(adapter):
    return None
"""


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path holding a fake installed distribution with our entry points."""
    modules = {
        "adapter_alpha": GOOD.format(engine="alpha"),
        "adapter_beta": GOOD.format(engine="beta"),
        "adapter_misspelled": MISSPELLED_HOOK,
        "adapter_wrongarg": WRONG_ARGUMENT,
        "adapter_broken": IMPORT_ERROR,
        "adapter_nameless": NO_ENGINE_NAME,
    }
    for module, source in modules.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    dist_info = tmp_path / "fake_adapters-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-adapters\nVersion: 1.0\n"
    )
    lines = [f"[{GROUP}]"] + [f"{m.removeprefix('adapter_')} = {m}" for m in modules]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for module in modules:
            sys.modules.pop(module, None)


class FakeAdapter:
    engine = "beta"
    engine_version = "1"
    app_name = "app"
    capabilities: frozenset[str] = frozenset()


def test_good_adapters_load_and_broken_ones_are_reported_by_name(
    plugin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = load_adapters(GROUP)

    assert registry.loaded == {"alpha": "alpha", "beta": "beta"}
    assert set(registry.failed) == {"broken", "misspelled", "wrongarg", "nameless"}
    assert "engine_that_is_not_installed" in registry.failed["broken"]
    assert "z4j_enqueue_task" in registry.failed["misspelled"]
    assert "surprise" in registry.failed["wrongarg"]
    assert "z4j_engine_name" in registry.failed["nameless"]
    for name in registry.failed:
        assert repr(name) in caplog.text

    # The hooks of the adapters that loaded still answer; the broken ones are gone.
    assert sorted(registry.hook.z4j_engine_name()) == ["alpha", "beta"]
    assert registry.hook.z4j_registered_tasks(adapter=FakeAdapter()) == ["beta.task"]


def test_no_adapters_installed_is_not_an_error() -> None:
    registry = load_adapters("z4j.group-nobody-uses")
    assert registry.loaded == {} and registry.failed == {}
    assert registry.hook.z4j_engine_name() == []
