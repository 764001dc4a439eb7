"""The adapter that docs/adapters.md shows, written from the page into a module `z4j_tiny`."""

from __future__ import annotations

from pathlib import Path

import pytest
from page import adapter_source


@pytest.fixture(scope="module")
def z4j_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `z4j_tiny.py`, written from the page."""
    folder = tmp_path_factory.mktemp("z4j_tiny")
    (folder / "z4j_tiny.py").write_text(adapter_source())
    return folder
