from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from z4j_core.testing.brainproc import BrainProcess


@pytest.fixture
def brain(tmp_path: Path) -> Iterator[BrainProcess]:
    process = BrainProcess(tmp_path / "brain")
    yield process
    process.stop()
    if process.log_path.exists():
        sys.stderr.write(process.log_path.read_text()[-4000:])
