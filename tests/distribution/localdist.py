"""Build this checkout's distributions and install them into fresh environments, ours local only.

Our package names are also used on the public index by another product; a resolver must never
see both. So our distributions are installed first from the built files alone (`--no-index`),
and only then are their third-party dependencies resolved from the index, with ours already
satisfied at their exact pinned version.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = [ROOT, *sorted(p for p in (ROOT / "packages").iterdir() if p.is_dir())]


def project_table(directory: Path) -> dict[str, object]:
    with open(directory / "pyproject.toml", "rb") as fh:
        project: dict[str, object] = tomllib.load(fh)["project"]
    return project


OUR_NAMES = {str(project_table(d)["name"]) for d in PACKAGE_DIRS}
VERSION = str(project_table(ROOT)["version"])


def normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def build_all(out_dir: Path) -> list[Path]:
    """Build an sdist and a wheel of every package (the wheel from the sdist) into out_dir."""
    for directory in PACKAGE_DIRS:
        subprocess.run(
            [sys.executable, "-m", "uv", "build", "--quiet", "--out-dir", str(out_dir)],
            cwd=directory,
            check=True,
        )
    return sorted(out_dir.iterdir())


@dataclass
class Venv:
    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, *args], check=check, capture_output=True, text=True, timeout=600
        )

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "pip", "--disable-pip-version-check", *args)


def fresh_venv(path: Path) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return Venv(path)


def install_local(venv: Venv, dist: Path, requirement: str) -> None:
    """pip-install `requirement` (e.g. `z4j[huey]`) with our distributions from `dist` only."""
    ours = [normalize(name) for name in sorted(OUR_NAMES)]
    venv.pip("install", "--no-index", "--find-links", str(dist), "--no-deps", *ours)
    # Ours are now installed at the exact pinned version, so this step takes only third-party
    # dependencies from the index.
    venv.pip("install", "--find-links", str(dist), requirement)


def wheel_record(wheel: Path) -> dict[str, str]:
    """path -> hash for every file the wheel installs (RECORD's own line excluded)."""
    with zipfile.ZipFile(wheel) as archive:
        record_name = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        rows = csv.reader(io.StringIO(archive.read(record_name).decode()))
        return {path: digest for path, digest, _size in rows if digest}


def installed_distributions(venv: Venv) -> list[dict[str, str]]:
    script = (
        "import json, importlib.metadata as m;"
        "print(json.dumps([{'name': d.metadata['Name'], 'version': d.version,"
        " 'record': d.read_text('RECORD') or '', 'location': str(d.locate_file(''))}"
        " for d in m.distributions()]))"
    )
    result: list[dict[str, str]] = json.loads(venv.run("-c", script).stdout)
    return result


def file_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
