"""Python environments for tests, benchmarks and scripts, made with uv from this checkout.

Owns the one way an environment is built: a folder at the checkout's root holding a stamp (a
hash of the interpreter, the requirements and our packages' pyproject files), rebuilt only when
the stamp changes, one builder at a time. Our own packages are installed editable from
`packages/`, never by name from the index (another product uses our names there).

Standard library only, and it imports nothing of z4j: `scripts/fleet` runs it with a bare
`python3` (`python3 packages/z4j-core/src/z4j_core/testing/venvs.py FOLDER PACKAGE... -- REQ...`)
before anything is installed.
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

STAMP = ".z4j-env-stamp"


def checkout_root(start: Path | None = None) -> Path:
    """The checkout this module runs from (it is installed editable), found by its layout."""
    here = (start or Path(__file__)).resolve()
    for folder in here.parents:
        if (folder / "packages" / "z4j-core" / "pyproject.toml").exists():
            return folder
    raise RuntimeError(
        f"{here} is not inside a z4j checkout: install z4j-core editable from one "
        "(pip install -e packages/z4j-core)"
    )


@dataclass(frozen=True)
class Environment:
    """One environment: its folder at the checkout's root, our packages, the index's."""

    folder: str
    packages: tuple[str, ...]  # ours, from packages/ (editable), e.g. "z4j-core"
    requirements: tuple[str, ...]  # from the index

    def path(self, root: Path) -> Path:
        return root / self.folder

    def install_args(self, root: Path | None = None) -> list[str]:
        """Arguments for `pip install` / `session.install` that install this environment."""
        prefix = f"{root}/" if root else ""
        ours = [arg for package in self.packages for arg in ("-e", f"{prefix}packages/{package}")]
        return [*ours, *self.requirements]


def python_of(folder: Path) -> Path:
    return folder / "bin" / "python"


def stamp_of(env: Environment, python: str, root: Path) -> str:
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
    """One builder at a time per environment (a test and a hand-run script may start together)."""
    locks = folder.parent / ".venv-locks"  # a folder, so .gitignore's `.venv*/` covers it
    locks.mkdir(exist_ok=True)
    with open(locks / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure(
    env: Environment, python: str | None = None, root: Path | None = None, quiet: bool = False
) -> Path:
    """Make (or reuse) `env`; return its interpreter.

    python: the interpreter to base it on (default: the one running this).
    """
    root = root or checkout_root()
    base = python or sys.executable
    folder = env.path(root)
    want = stamp_of(env, base, root)
    stamp = folder / STAMP
    with _locked(folder):
        if stamp.exists() and stamp.read_text().strip() == want and python_of(folder).exists():
            return python_of(folder)
        if not quiet:
            wanted = ", ".join((*env.packages, *env.requirements))
            print(f"preparing {folder.name} ({wanted}); first run only...", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        uv = uv_command()
        if uv is None:  # a bare python3: a stdlib venv, then uv inside it
            subprocess.run([base, "-m", "venv", str(folder)], check=True)
            subprocess.run(
                [str(python_of(folder)), "-m", "pip", "install", "-qq",
                 "--disable-pip-version-check", "uv"],
                check=True,
            )  # fmt: skip
            uv = [str(python_of(folder)), "-m", "uv"]
        else:
            subprocess.run([*uv, "venv", "--quiet", "--python", base, str(folder)], check=True)
        subprocess.run(
            [*uv, "pip", "install", "--quiet", "--python", str(python_of(folder)),
             *env.install_args(root)],
            check=True,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )  # fmt: skip
        stamp.write_text(want + "\n")
    return python_of(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="make (or reuse) an environment: FOLDER PACKAGE... [-- REQUIREMENT...]"
    )
    parser.add_argument("folder", help="at the checkout's root, e.g. .venv-fleet")
    parser.add_argument("packages", nargs="*", help="ours, e.g. z4j-core")
    parser.add_argument("--python", help="the interpreter to base it on")
    args = list(sys.argv[1:] if argv is None else argv)
    requirements: list[str] = []
    if "--" in args:
        at = args.index("--")
        args, requirements = args[:at], args[at + 1 :]
    options = parser.parse_args(args)
    env = Environment(options.folder, tuple(options.packages), tuple(requirements))
    print(ensure(env, options.python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
