"""Fixtures of the brain's tests (the helpers live in ``brain_helpers``)."""

from brain_helpers import running_brain, store

__all__ = ["running_brain", "store"]
