"""z4j_core imports with no engine, no database driver and no web framework installed.

Each module is imported in a fresh interpreter whose import system refuses those packages, so
a stray import anywhere in core fails here even on a machine that has them installed.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import subprocess
import sys

import pytest

import z4j_core

FORBIDDEN = (
    # engines and their transports
    "celery kombu billiard rq dramatiq huey arq taskiq taskiq_redis redis periodiq "
    # database drivers and ORMs
    "psycopg psycopg2 asyncpg sqlalchemy aiosqlite pymysql "
    # web frameworks and servers
    "starlette fastapi uvicorn aiohttp django flask httpx requests"
).split()

# The test-support package is for test suites; it may need pytest.
CORE_MODULES = sorted(
    module.name
    for module in pkgutil.walk_packages(z4j_core.__path__, "z4j_core.")
    if not module.name.startswith("z4j_core.testing") and not module.name.endswith("__main__")
)

BLOCKER = """
import sys, importlib.abc
FORBIDDEN = set({forbidden!r})
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"z4j_core imported {{name!r}}, which core must never import")
        return None
sys.meta_path.insert(0, Refuse())
import importlib
importlib.import_module({module!r})
leaked = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
assert not leaked, leaked
"""


# Modules of an optional extra, imported only when it is asked for: module -> its dependency.
OPTIONAL = {"z4j_core.agent.metrics": "prometheus_client"}  # z4j-core[metrics]


@pytest.mark.parametrize("module", ["z4j_core", *CORE_MODULES])
def test_core_module_imports_without_engines_drivers_or_frameworks(module: str) -> None:
    needs = OPTIONAL.get(module)
    if needs is not None and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{module} belongs to an extra that needs {needs}, not installed here")
    code = BLOCKER.format(forbidden=FORBIDDEN, module=module)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_package_import_stays_light() -> None:
    """Importing z4j_core (what an agent does first) pulls in neither croniter nor astral."""
    code = (
        "import sys, z4j_core, z4j_core.hookspecs, z4j_core.plugins;"
        "heavy = [m for m in ('croniter', 'astral', 'msgspec', 'websockets') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
