"""Shifts this process's wall clock by Z4J_TEST_CLOCK_OFFSET seconds (clock-skew tests).

Put this folder first on PYTHONPATH of a child process. `time.time` and `time.time_ns` are what
the agent reads for wall-clock instants (event `at`, the fire memory); the monotonic clock,
which the protocol uses for deadlines and heartbeats, is left alone, as skew leaves it alone.
"""

import os
import time

_offset = float(os.environ.get("Z4J_TEST_CLOCK_OFFSET", "0") or 0)
if _offset:
    _real_time, _real_time_ns = time.time, time.time_ns
    time.time = lambda: _real_time() + _offset
    time.time_ns = lambda: _real_time_ns() + int(_offset * 1e9)
