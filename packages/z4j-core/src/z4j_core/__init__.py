"""z4j core: the pieces every z4j process shares.

Owns the wire protocol, the hook specifications adapters implement, the agent runtime and the
scheduler core. Must never import a task engine, a database driver or a web framework: an
application installs an engine adapter, and the adapter brings its engine.
"""

__version__ = "2.0.0.dev0"
