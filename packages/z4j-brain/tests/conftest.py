"""Fixtures of the brain's tests (the helpers live in ``brain_helpers``)."""

from brain_helpers import database, running_brain, store

__all__ = ["database", "running_brain", "store"]
