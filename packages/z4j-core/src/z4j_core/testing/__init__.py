"""Test support that adapter packages share: service checks and a pytest plugin.

Nothing here is imported by the agent or the brain at run time.
"""
