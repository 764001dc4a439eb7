"""The fleet's Python environments, made with uv from this checkout's sources and cached.

Celery's Redis transport, arq and taskiq-redis pin redis-py versions no two of them accept
together, so each gets an environment of its own; Huey, RQ and Dramatiq share the main one with
the brain and the `z4j` command. Each environment is a folder at the repository's root
(`.venv-fleet`, `.venv-fleet-celery`, ...) holding a stamp: a hash of what it was built from
(the interpreter, the requirements, our packages' pyproject files). A second run whose stamp
matches reuses it at once. Our own packages are installed editable from `packages/`, never by
name from the index.

Standard library only: `scripts/fleet` runs this module with the system's `python3` to make
the main environment before anything else is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Environment:
    name: str
    folder: str
    packages: tuple[str, ...]  # ours, from packages/ (editable)
    requirements: tuple[str, ...]  # from the index

    def path(self, root: Path = ROOT) -> Path:
        return root / self.folder


ENVIRONMENTS = {
    "main": Environment(
        "main",
        ".venv-fleet",
        ("z4j-core", "z4j-brain", "z4j-huey", "z4j-rq", "z4j-dramatiq"),
        (
            "huey",
            "redis",
            "rq>=3.0",
            "dramatiq[redis]",
            "periodiq",
            "psycopg[binary]",
            "uv==0.13.8",
        ),
    ),
    "celery": Environment(
        "celery", ".venv-fleet-celery", ("z4j-core", "z4j-celery"), ("celery[redis]",)
    ),
    "arq": Environment("arq", ".venv-fleet-arq", ("z4j-core", "z4j-arq"), ("arq",)),
    "taskiq": Environment(
        "taskiq", ".venv-fleet-taskiq", ("z4j-core", "z4j-taskiq"), ("taskiq", "taskiq-redis")
    ),
}
STAMP = ".z4j-fleet-stamp"


def venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def stamp_of(env: Environment, python: str, root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout
    digest.update(version.encode())
    digest.update("\n".join(env.requirements).encode())
    sources = [root / "pyproject.toml"]
    sources += [root / "packages" / package / "pyproject.toml" for package in env.packages]
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def uv_command() -> list[str] | None:
    """How to run uv from here: this interpreter's `uv` module, else one on PATH."""
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    found = shutil.which("uv")
    return [found] if found else None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One builder at a time per environment (a test and a hand-run fleet may start together)."""
    locks = folder.parent / ".venv-fleet-locks"  # a folder, so .gitignore's `.venv*/` covers it
    locks.mkdir(exist_ok=True)
    with open(locks / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure(name: str, python: str | None = None, root: Path = ROOT, quiet: bool = False) -> Path:
    """Make (or reuse) environment `name`; return its interpreter.

    python: the interpreter to base it on (default: the one running this).
    """
    env = ENVIRONMENTS[name]
    base = python or sys.executable
    folder = env.path(root)
    want = stamp_of(env, base, root)
    stamp = folder / STAMP
    with _locked(folder):
        if stamp.exists() and stamp.read_text().strip() == want and venv_python(folder).exists():
            return venv_python(folder)
        if not quiet:
            wanted = ", ".join(env.requirements)
            print(f"fleet: preparing {folder.name} ({wanted}); first run only...", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        uv = uv_command()
        if uv is None:  # a bare python3: a stdlib venv, then uv inside it
            subprocess.run([base, "-m", "venv", str(folder)], check=True)
            subprocess.run(
                [str(venv_python(folder)), "-m", "pip", "install", "-qq",
                 "--disable-pip-version-check", "uv"],
                check=True,
            )  # fmt: skip
            uv = [str(venv_python(folder)), "-m", "uv"]
        else:
            subprocess.run([*uv, "venv", "--quiet", "--python", base, str(folder)], check=True)
        editable = [
            arg for package in env.packages for arg in ("-e", str(root / "packages" / package))
        ]
        subprocess.run(
            [*uv, "pip", "install", "--quiet", "--python", str(venv_python(folder)),
             *editable, *env.requirements],
            check=True,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )  # fmt: skip
        stamp.write_text(want + "\n")
    return venv_python(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="make the fleet's environments")
    parser.add_argument("names", nargs="*", default=["main"], choices=sorted(ENVIRONMENTS))
    options = parser.parse_args(argv)
    for name in options.names:
        print(ensure(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
