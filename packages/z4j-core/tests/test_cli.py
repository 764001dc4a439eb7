"""The `z4j` command: light to start, one clear line for errors, the brain loaded lazily."""

from __future__ import annotations

import subprocess
import sys

import z4j_core


def z4j(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "z4j_core.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_version() -> None:
    result = z4j("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"z4j {z4j_core.__version__}"


def test_no_subcommand_prints_help_and_fails() -> None:
    result = z4j()
    assert result.returncode == 2
    assert "usage: z4j" in result.stderr


def test_brain_commands_without_the_brain_say_what_to_install() -> None:
    code = (
        "import sys, importlib.abc\n"
        "class Refuse(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'z4j_brain':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "from z4j_core.cli import main\n"
        "sys.exit(main(['brain', 'serve']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "z4j: error: this command needs the brain: install it with pip install 'z4j[brain]'"
    )
    assert "Traceback" not in result.stderr
