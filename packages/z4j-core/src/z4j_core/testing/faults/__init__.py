"""Fault injection with real processes: a TCP proxy, agent hosts, skewed clocks, the scenarios
that tests/reliability asserts on and bench/bench_faults.py measures."""
