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
from z4j_core.adapter import Adapter
from z4j_core.wire import TaskInfo


class {cls}(Adapter):
    engine = "{engine}"

    @classmethod
    def create(cls, app, options):
        return cls() if app == "{engine}-app" else None

    def registered_tasks(self):
        return [TaskInfo(name="{engine}.task")]
"""

MISSPELLED_HOOK = """
from z4j_core.hookspecs import hookimpl

@hookimpl
def z4j_adapter_classes():
    return []
"""

WRONG_ARGUMENT = """
from z4j_core.hookspecs import hookimpl

@hookimpl
def z4j_adapter_class(surprise):
    return None
"""

IMPORT_ERROR = """
import engine_that_is_not_installed
"""

NO_ADAPTER_CLASS = """
from z4j_core.hookspecs import hookimpl

def helper():
    return None
"""

NOT_AN_ADAPTER = """
from z4j_core.hookspecs import hookimpl

@hookimpl
def z4j_adapter_class():
    return dict
"""


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path holding a fake installed distribution with our entry points."""
    modules = {
        "adapter_alpha": GOOD.format(engine="alpha", cls="AlphaAdapter"),
        "adapter_beta": GOOD.format(engine="beta", cls="BetaAdapter"),
        "adapter_misspelled": MISSPELLED_HOOK,
        "adapter_wrongarg": WRONG_ARGUMENT,
        "adapter_broken": IMPORT_ERROR,
        "adapter_nameless": NO_ADAPTER_CLASS,
        "adapter_notadapter": NOT_AN_ADAPTER,
    }
    # An adapter's entry point names its class; a plugin module is allowed too.
    targets = {
        "adapter_alpha": "adapter_alpha:AlphaAdapter",
        "adapter_beta": "adapter_beta:BetaAdapter",
    }
    for module, source in modules.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    dist_info = tmp_path / "fake_adapters-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-adapters\nVersion: 1.0\n"
    )
    lines = [f"[{GROUP}]"] + [
        f"{m.removeprefix('adapter_')} = {targets.get(m, m)}" for m in modules
    ]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in modules:
        sys.modules.pop(module, None)


def test_good_adapters_load_and_broken_ones_are_reported_by_name(
    plugin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = load_adapters(GROUP)

    assert registry.loaded == {"alpha": "alpha", "beta": "beta"}
    assert set(registry.failed) == {"broken", "misspelled", "wrongarg", "nameless", "notadapter"}
    assert "engine_that_is_not_installed" in registry.failed["broken"]
    assert "z4j_adapter_classes" in registry.failed["misspelled"]
    assert "surprise" in registry.failed["wrongarg"]
    assert "z4j_adapter_class" in registry.failed["nameless"]
    assert "Adapter subclass" in registry.failed["notadapter"]
    for name in registry.failed:
        assert repr(name) in caplog.text

    # The hooks of the adapters that loaded still answer; the broken ones are gone.
    assert sorted(cls.engine for cls in registry.hook.z4j_adapter_class()) == ["alpha", "beta"]
    adapter = registry.adapter_for("beta-app")
    assert adapter is not None and adapter.engine == "beta"
    assert [t.name for t in adapter.registered_tasks()] == ["beta.task"]
    assert registry.adapter_for("nobody's app") is None


def test_no_adapters_installed_is_not_an_error() -> None:
    registry = load_adapters("z4j.group-nobody-uses")
    assert registry.loaded == {} and registry.failed == {}
    assert registry.hook.z4j_adapter_class() == []
