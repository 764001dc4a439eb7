"""The adapter that docs/adapters.md shows: the page's first python block."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "adapters.md"


def adapter_source() -> str:
    """The first python block of docs/adapters.md: the whole adapter."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, "docs/adapters.md shows no python code block"
    return str(blocks[0])
