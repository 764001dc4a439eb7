"""Every package builds an sdist and a wheel, and `pip install 'z4j[...]'` from those files works
in a fresh virtualenv, with only our own builds of our package names installed."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from localdist import (
    OUR_NAMES,
    PACKAGE_DIRS,
    VERSION,
    build_all,
    file_hash,
    fresh_venv,
    install_local,
    installed_distributions,
    normalize,
    project_table,
    wheel_record,
)

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="module")
def built(dist: Path) -> list[Path]:
    return build_all(dist)


def test_every_package_builds_an_sdist_and_a_wheel(built: list[Path]) -> None:
    names = {p.name for p in built}
    for name in OUR_NAMES:
        stem = normalize(name).replace("-", "_")
        assert f"{stem}-{VERSION}.tar.gz" in names, names
        assert f"{stem}-{VERSION}-py3-none-any.whl" in names, names


def test_the_brain_wheel_ships_the_consoles_templates_and_static_files(
    built: list[Path],
) -> None:
    import zipfile

    (wheel,) = [p for p in built if p.name.startswith("z4j_brain-") and p.suffix == ".whl"]
    names = set(zipfile.ZipFile(wheel).namelist())
    console = Path(__file__).parents[2] / "packages/z4j-brain/src/z4j_brain/console"
    shipped = sorted(
        str(f.relative_to(console.parent.parent))
        for f in console.rglob("*")
        if f.is_file() and f.suffix in (".html", ".css", ".js")
    )
    assert shipped and not [f for f in shipped if f not in names], names


def test_our_packages_share_one_version_and_pin_each_other_exactly() -> None:
    ours = {normalize(n) for n in OUR_NAMES}
    for directory in PACKAGE_DIRS:
        project = project_table(directory)
        assert project["version"] == VERSION, directory
        requirements = list(project.get("dependencies", []))  # type: ignore[call-overload]
        for extra in dict(project.get("optional-dependencies", {})).values():  # type: ignore[call-overload]
            requirements.extend(extra)
        for requirement in requirements:
            name = normalize(requirement.split("[")[0].split("=")[0].split(";")[0].strip())
            if name in ours:
                assert f"=={VERSION}" in requirement, f"{directory}: {requirement}"


def extras_to_try() -> list[str]:
    """The bare package, `all` (every one of our packages) and Celery's extra; every extra
    alone with `Z4J_FULL_MATRIX=1` (test_matrix_of_pairs_and_all resolves them all either way:
    each install here takes a fresh environment, about 12 s)."""
    extras = sorted(dict(project_table(PACKAGE_DIRS[0]).get("optional-dependencies", {})))  # type: ignore[call-overload]
    if not os.environ.get("Z4J_FULL_MATRIX"):
        extras = [e for e in extras if e in ("all", "celery")]
    return ["z4j"] + [f"z4j[{extra}]" for extra in extras]


@pytest.mark.parametrize("requirement", extras_to_try())
def test_install_from_built_files_holds_only_our_builds(
    requirement: str, built: list[Path], dist: Path, tmp_path: Path
) -> None:
    venv = fresh_venv(tmp_path / "venv")
    install_local(venv, dist, requirement)

    wheels = {normalize(p.name.split("-")[0]): p for p in built if p.suffix == ".whl"}
    ours = {normalize(n) for n in OUR_NAMES}
    installed_ours = []
    for dist_info in installed_distributions(venv):
        name = normalize(dist_info["name"])
        if not name.startswith("z4j"):
            continue
        assert name in ours, f"{name} is not one of ours but was installed"
        assert dist_info["version"] == VERSION, dist_info
        # Every file the installed distribution recorded must be byte-identical to our build.
        built_record = wheel_record(wheels[name])
        rows = csv.reader(io.StringIO(dist_info["record"]))
        for path, digest, _size in rows:
            if path in built_record:
                assert digest == built_record[path], f"{path} differs from our build"
                assert file_hash(Path(dist_info["location"]) / path) == digest
        installed_ours.append(name)
    assert "z4j" in installed_ours and "z4j-core" in installed_ours

    version = venv.run("-m", "z4j_core.cli", "--version")
    assert version.stdout.strip() == f"z4j {VERSION}"
    z4j = Path(venv.path / "bin" / "z4j")
    assert z4j.exists(), "the z4j command was not installed"
