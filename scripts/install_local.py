"""Install z4j from this checkout into the running Python, never our names from the index.

    python3 scripts/install_local.py 'z4j[brain,huey]'

Builds every distribution of this repository into dist/, installs the ones the requirement
needs from those files alone (`--no-index`), then lets pip take only third-party dependencies
from the index: ours are already there at their exact pinned version. Our package names are
also used on the public index by another product, which is why it goes in two steps.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"


def run(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True)


def needed(requirement: str) -> list[str]:
    """Our distributions a requirement like `z4j[brain,huey]` pulls in."""
    extras = re.findall(r"\[(.*)\]", requirement)
    names = {"z4j", "z4j-core"}
    available = {p.name for p in (ROOT / "packages").iterdir() if p.is_dir()}
    for raw in extras[0].split(",") if extras else []:
        extra = raw.strip()
        if extra == "all":
            names |= available
        elif f"z4j-{extra}" in available:
            names.add(f"z4j-{extra}")
        elif extra:
            sys.exit(
                f"install_local: unknown extra {extra!r} (have: all, "
                + ", ".join(sorted(n.removeprefix("z4j-") for n in available))
                + ")"
            )
    return sorted(names)


def main() -> None:
    requirement = sys.argv[1] if len(sys.argv) > 1 else "z4j[brain]"
    run("-m", "pip", "install", "--quiet", "uv")
    for folder in [ROOT, *sorted(p for p in (ROOT / "packages").iterdir() if p.is_dir())]:
        run("-m", "uv", "build", "--quiet", "--out-dir", str(DIST), str(folder))
    run(
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        str(DIST),
        "--no-deps",
        *needed(requirement),
    )
    run("-m", "pip", "install", "--quiet", "--find-links", str(DIST), requirement)
    print(f"installed {requirement} from {DIST}")


if __name__ == "__main__":
    main()
