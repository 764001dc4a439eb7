from console_rig import admin, browser, rig

__all__ = ["admin", "browser", "rig"]
