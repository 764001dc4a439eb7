"""The brain's configuration, read once: explicit arguments, then ``Z4J_*`` variables, then
defaults.

Owns every environment variable name the brain reads and every default it falls back to.
Never read at import time: ``BrainConfig.load()`` is called by the CLI (or a test) once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from z4j_brain.db import is_postgres
from z4j_core.wire.frames import Limits
from z4j_core.wire.limits import (
    DEFAULT_HEARTBEAT_SECONDS,
    DEFAULT_WINDOW,
    MAX_BATCH_EVENTS,
    MAX_FRAME_BYTES,
)

ENV_HOME: Final = "Z4J_HOME"
ENV_HOST: Final = "Z4J_BRAIN_HOST"
ENV_PORT: Final = "Z4J_BRAIN_PORT"
ENV_DATABASE: Final = "Z4J_DATABASE"
ENV_DATABASE_URL: Final = "Z4J_DATABASE_URL"
ENV_TLS_CERTFILE: Final = "Z4J_TLS_CERTFILE"
ENV_TLS_KEYFILE: Final = "Z4J_TLS_KEYFILE"
ENV_AUTH_FAILURE_LIMIT: Final = "Z4J_AUTH_FAILURE_LIMIT"
ENV_RETENTION_DAYS: Final = "Z4J_EVENT_RETENTION_DAYS"
ENV_HEARTBEAT: Final = "Z4J_HEARTBEAT_SECONDS"
ENV_WINDOW: Final = "Z4J_WINDOW"
ENV_MAX_BATCH_EVENTS: Final = "Z4J_MAX_BATCH_EVENTS"
ENV_MAX_FRAME_BYTES: Final = "Z4J_MAX_FRAME_BYTES"
ENV_ADMIN_TOKEN: Final = "Z4J_ADMIN_TOKEN"
#: The audit log's HMAC key (any string of 16 characters or more). Every brain sharing a
#: database needs the same one. Without it the key lives in a file beside a SQLite database
#: (``<database>.audit-key``), or ``$Z4J_HOME/audit.key`` for Postgres, created on first start.
ENV_AUDIT_KEY: Final = "Z4J_AUDIT_KEY"
#: The Postgres advisory-lock key the scheduler leader holds (default ``LEADER_LOCK``);
#: tests give each run its own.
ENV_LEADER_LOCK_KEY: Final = "Z4J_LEADER_LOCK_KEY"

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 7700
DEFAULT_HOME: Final = "~/.local/share/z4j"
DATABASE_FILE: Final = "brain.sqlite3"
DEFAULT_RETENTION_DAYS: Final = 7.0
DEFAULT_COMMAND_DEADLINE_SECONDS: Final = 30.0
#: How often the brain reloads the tokens table to cut off revoked or expired tokens.
TOKEN_REFRESH_SECONDS: Final = 0.5
#: Bad tokens (agent upgrades and API calls together) one address may present per window
#: before it gets HTTP 429 until the window ends.
DEFAULT_AUTH_FAILURE_LIMIT: Final = 20
AUTH_FAILURE_WINDOW_SECONDS: Final = 60.0
#: How often events older than the retention are purged.
PURGE_INTERVAL_SECONDS: Final = 300.0


class ConfigError(ValueError):
    """A setting has a value the brain cannot use; the message names the setting."""


def default_database_path(env: Mapping[str, str]) -> Path:
    """``$Z4J_HOME/brain.sqlite3``, ``Z4J_HOME`` defaulting to ``~/.local/share/z4j``."""
    home = env.get(ENV_HOME) or DEFAULT_HOME
    return Path(home).expanduser() / DATABASE_FILE


@dataclass(frozen=True)
class BrainConfig:
    """Everything ``z4j brain serve`` needs. Build it with ``load``."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: A SQLite file (a ``Path``) or a ``postgresql://`` URL (a ``str``).
    database: Path | str = field(default_factory=lambda: default_database_path({}))
    retention_seconds: float = DEFAULT_RETENTION_DAYS * 86400.0
    limits: Limits = field(default_factory=Limits)
    admin_token: str | None = None  # used only when the database has no admin token yet
    purge_interval_seconds: float = PURGE_INTERVAL_SECONDS
    token_refresh_seconds: float = TOKEN_REFRESH_SECONDS
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    auth_failure_limit: int = DEFAULT_AUTH_FAILURE_LIMIT
    auth_failure_window_seconds: float = AUTH_FAILURE_WINDOW_SECONDS
    audit_key: str | None = None
    audit_key_file: Path | None = None
    leader_lock_key: int | None = None

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None

    @property
    def is_postgres(self) -> bool:
        return is_postgres(self.database)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def ws_max_size(self) -> int:
        """The WebSocket layer's message ceiling: the announced frame limit plus room for the
        session to see (and refuse with its own close code) a frame slightly over it."""
        return self.limits.max_frame_bytes + 64 * 1024

    @classmethod
    def load(
        cls,
        *,
        host: str | None = None,
        port: int | None = None,
        database: str | Path | None = None,
        retention_days: float | None = None,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> BrainConfig:
        """Explicit arguments win, then ``env`` (``os.environ`` by default), then defaults.

        ``database`` is a SQLite file or a ``postgresql://`` URL (``Z4J_DATABASE_URL``, then
        ``Z4J_DATABASE``, then ``$Z4J_HOME/brain.sqlite3``).
        """
        env = os.environ if env is None else env
        resolved_port = port if port is not None else _int(env, ENV_PORT, DEFAULT_PORT)
        if not 0 <= resolved_port <= 65535:
            raise ConfigError(f"port {resolved_port} is out of range (0-65535)")
        if database is None:
            database = (
                env.get(ENV_DATABASE_URL) or env.get(ENV_DATABASE) or default_database_path(env)
            )
        target: Path | str = str(database) if is_postgres(database) else Path(database).expanduser()
        cert = certfile or env.get(ENV_TLS_CERTFILE) or None
        key = keyfile or env.get(ENV_TLS_KEYFILE) or None
        if (cert is None) != (key is None):
            raise ConfigError(
                "TLS needs both a certificate and its key (--certfile and --keyfile, or "
                f"{ENV_TLS_CERTFILE} and {ENV_TLS_KEYFILE})"
            )
        for label, value in (("certificate", cert), ("key", key)):
            if value is not None and not Path(value).expanduser().is_file():
                raise ConfigError(f"TLS {label} file {str(value)!r} does not exist")
        failure_limit = _int(env, ENV_AUTH_FAILURE_LIMIT, DEFAULT_AUTH_FAILURE_LIMIT)
        if failure_limit < 1:
            raise ConfigError(f"{ENV_AUTH_FAILURE_LIMIT} must be at least 1")
        days = (
            retention_days
            if retention_days is not None
            else _float(env, ENV_RETENTION_DAYS, DEFAULT_RETENTION_DAYS)
        )
        if days <= 0:
            raise ConfigError(f"{ENV_RETENTION_DAYS} must be positive, not {days}")
        try:
            limits = Limits(
                max_frame_bytes=_int(env, ENV_MAX_FRAME_BYTES, MAX_FRAME_BYTES),
                max_batch_events=_int(env, ENV_MAX_BATCH_EVENTS, MAX_BATCH_EVENTS),
                window=_int(env, ENV_WINDOW, DEFAULT_WINDOW),
                heartbeat_seconds=_float(env, ENV_HEARTBEAT, DEFAULT_HEARTBEAT_SECONDS),
            )
            _validate_limits(limits)
        except ValueError as exc:
            raise ConfigError(f"invalid limits: {exc}") from None
        audit_key = env.get(ENV_AUDIT_KEY) or None
        if audit_key is not None and len(audit_key) < 16:
            raise ConfigError(f"{ENV_AUDIT_KEY} must be at least 16 characters long")
        if isinstance(target, Path):
            key_file = target.with_name(target.name + ".audit-key")
        else:
            key_file = Path(env.get(ENV_HOME) or DEFAULT_HOME).expanduser() / "audit.key"
        lock_key = env.get(ENV_LEADER_LOCK_KEY)
        return cls(
            host=host or env.get(ENV_HOST) or DEFAULT_HOST,
            audit_key=audit_key,
            audit_key_file=key_file,
            leader_lock_key=_int(env, ENV_LEADER_LOCK_KEY, 0) if lock_key else None,
            port=resolved_port,
            database=target,
            retention_seconds=days * 86400.0,
            limits=limits,
            admin_token=env.get(ENV_ADMIN_TOKEN) or None,
            tls_certfile=Path(cert).expanduser() if cert is not None else None,
            tls_keyfile=Path(key).expanduser() if key is not None else None,
            auth_failure_limit=failure_limit,
        )


def _validate_limits(limits: Limits) -> None:
    # Struct constructors do not run msgspec's constraints; a round trip through the codec does.
    import msgspec

    try:
        msgspec.msgpack.decode(msgspec.msgpack.encode(limits), type=Limits)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
