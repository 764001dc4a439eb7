# Imported here, on the main thread, before any agent thread runs: CPython 3.11.7's compiler
# is not safe when two threads compile at once, and pytest-hypothesis imports late otherwise.
import hypothesis  # noqa: F401
