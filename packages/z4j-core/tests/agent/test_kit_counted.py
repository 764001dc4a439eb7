"""`kit.counted`: a block whose exception is counted and logged once, never raised."""

from __future__ import annotations

import logging
import types

import pytest

from z4j_core import adapter as kit


def test_a_counted_block_never_raises_counts_each_error_and_logs_its_what_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = types.SimpleNamespace(errors=0)
    what = "could not start with the test engine (counted-block test)"
    kit._logged.discard(what)
    with caplog.at_level(logging.ERROR, logger="z4j.adapter"):
        for n in range(3):
            with kit.counted(owner, what):
                raise RuntimeError(f"broke {n}")
    assert owner.errors == 3
    assert [r.getMessage() for r in caplog.records].count(
        f"z4j {what} (counted; logged only this once)"
    ) == 1


def test_a_counted_block_that_does_not_raise_counts_nothing() -> None:
    owner = types.SimpleNamespace(errors=0)
    with kit.counted(owner, "never happens"):
        done = True
    assert done and owner.errors == 0


def test_a_counted_block_lets_what_is_not_an_exception_through() -> None:
    owner = types.SimpleNamespace(errors=0)
    with pytest.raises(KeyboardInterrupt), kit.counted(owner, "interrupted"):
        raise KeyboardInterrupt
    assert owner.errors == 0
