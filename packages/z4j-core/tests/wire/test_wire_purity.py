"""The wire package is pure: it imports no clock, socket, thread, event loop or engine."""

from __future__ import annotations

import ast
from pathlib import Path

import z4j_core.wire

WIRE = Path(z4j_core.wire.__file__).parent
FORBIDDEN = {
    "asyncio", "datetime", "multiprocessing", "select", "selectors", "socket", "ssl",
    "subprocess", "threading", "time", "websockets", "croniter", "astral", "celery", "rq",
    "dramatiq", "huey", "arq", "taskiq", "redis",
}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_wire_modules_import_nothing_impure() -> None:
    modules = sorted(WIRE.glob("*.py"))
    assert {m.name for m in modules} >= {
        "__init__.py", "limits.py", "frames.py", "codec.py", "signing.py", "session.py",
        "errors.py",
    }  # fmt: skip
    for module in modules:
        bad = imported_modules(module) & FORBIDDEN
        assert not bad, f"{module.name} imports {sorted(bad)}"
