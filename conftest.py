pytest_plugins = ("z4j_core.testing.pytest_plugin",)
