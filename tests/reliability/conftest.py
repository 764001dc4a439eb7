from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
# The fault modules, and the scheduler suite's Huey sink and brain helpers they reuse.
sys.path[:0] = [str(HERE), str(HERE.parent / "scheduler")]
