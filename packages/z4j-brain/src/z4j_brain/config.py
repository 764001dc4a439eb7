"""The brain's configuration, read once: explicit arguments (flags), then ``Z4J_*`` variables,
then a ``brain.toml`` (``--config``), then defaults.

Owns every environment variable name the brain reads, every key of ``brain.toml`` (``SETTINGS``:
each key stands for one variable, so one set of checks serves both) and every default.
Never read at import time: ``BrainConfig.load()`` is called by the CLI (or a test) once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from z4j_brain.db import is_postgres
from z4j_core.endpoints import DEFAULT_HOST, DEFAULT_PORT
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
ENV_FIRE_RETENTION_DAYS: Final = "Z4J_FIRE_RETENTION_DAYS"
ENV_PURGE_INTERVAL: Final = "Z4J_PURGE_INTERVAL_SECONDS"
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
#: A web session ends after this many seconds without a request (idle expiry)...
ENV_SESSION_IDLE: Final = "Z4J_SESSION_IDLE_SECONDS"
#: ...and this many seconds after it was opened, whatever (absolute expiry).
ENV_SESSION_MAX: Final = "Z4J_SESSION_MAX_SECONDS"
ENV_LOG_LEVEL: Final = "Z4J_LOG_LEVEL"
#: ``text`` (one line per record, for a terminal) or ``json`` (one object per line).
ENV_LOG_FORMAT: Final = "Z4J_LOG_FORMAT"
#: ``0`` turns off the access log of the HTTP API (on by default).
ENV_ACCESS_LOG: Final = "Z4J_ACCESS_LOG"
#: Mark the session cookie ``Secure`` (default: when the brain itself serves TLS; set it behind
#: a proxy that terminates TLS, so the browser never sends the cookie over plain HTTP).
ENV_SECURE_COOKIES: Final = "Z4J_SECURE_COOKIES"
#: Task names that may be a label value in ``/metrics`` (comma-separated).
ENV_METRICS_TASKS: Final = "Z4J_METRICS_TASKS"
#: Besides those, how many of the first task names seen get a label of their own (default 0).
ENV_METRICS_TASK_TOP_N: Final = "Z4J_METRICS_TASK_TOP_N"

DEFAULT_HOME: Final = "~/.local/share/z4j"
DATABASE_FILE: Final = "brain.sqlite3"
DEFAULT_RETENTION_DAYS: Final = 7.0
#: Settled fires are kept this long (a fire's history, and what tells a backfill that a slot
#: fired: a backfill cannot reach further back).
DEFAULT_FIRE_RETENTION_DAYS: Final = 90.0
DEFAULT_COMMAND_DEADLINE_SECONDS: Final = 30.0
#: How often the brain reloads the tokens table to cut off revoked or expired tokens.
TOKEN_REFRESH_SECONDS: Final = 0.5
#: Bad tokens (agent upgrades and API calls together) one address may present per window
#: before it gets HTTP 429 until the window ends.
DEFAULT_AUTH_FAILURE_LIMIT: Final = 20
AUTH_FAILURE_WINDOW_SECONDS: Final = 60.0
#: How often events older than the retention are purged.
PURGE_INTERVAL_SECONDS: Final = 300.0
DEFAULT_SESSION_IDLE_SECONDS: Final = 1800.0
DEFAULT_SESSION_MAX_SECONDS: Final = 12 * 3600.0
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("text", "json")
#: Most task names ``metrics_task_top_n`` may ask for (each is a label set per state and app).
MAX_METRICS_TASKS: Final = 1000


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
    fire_retention_seconds: float = DEFAULT_FIRE_RETENTION_DAYS * 86400.0
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
    session_idle_seconds: float = DEFAULT_SESSION_IDLE_SECONDS
    session_max_seconds: float = DEFAULT_SESSION_MAX_SECONDS
    #: None: Secure exactly when the brain serves TLS itself (``cookies_secure``).
    secure_cookies: bool | None = None
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = True
    metrics_task_names: tuple[str, ...] = ()
    metrics_task_top_n: int = 0

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None

    @property
    def cookies_secure(self) -> bool:
        """Whether the session cookie carries ``Secure``."""
        return self.tls if self.secure_cookies is None else self.secure_cookies

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
        log_level: str | None = None,
        log_format: str | None = None,
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
        fire_days = _float(env, ENV_FIRE_RETENTION_DAYS, DEFAULT_FIRE_RETENTION_DAYS)
        if fire_days <= 0:
            raise ConfigError(f"{ENV_FIRE_RETENTION_DAYS} must be positive, not {fire_days}")
        purge_every = _float(env, ENV_PURGE_INTERVAL, PURGE_INTERVAL_SECONDS)
        if purge_every <= 0:
            raise ConfigError(f"{ENV_PURGE_INTERVAL} must be positive, not {purge_every}")
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
        idle = _float(env, ENV_SESSION_IDLE, DEFAULT_SESSION_IDLE_SECONDS)
        longest = _float(env, ENV_SESSION_MAX, DEFAULT_SESSION_MAX_SECONDS)
        if not 0 < idle <= longest:
            raise ConfigError(
                f"{ENV_SESSION_IDLE} ({idle:g}) must be positive and at most "
                f"{ENV_SESSION_MAX} ({longest:g})"
            )
        level = (log_level or env.get(ENV_LOG_LEVEL) or "info").lower()
        if level not in LOG_LEVELS:
            choices = ", ".join(LOG_LEVELS)
            raise ConfigError(f"{ENV_LOG_LEVEL} must be one of {choices}, not {level!r}")
        fmt = (log_format or env.get(ENV_LOG_FORMAT) or "text").lower()
        if fmt not in LOG_FORMATS:
            raise ConfigError(f"{ENV_LOG_FORMAT} must be text or json, not {fmt!r}")
        access = _bool(env, ENV_ACCESS_LOG)
        secure_cookies = _bool(env, ENV_SECURE_COOKIES)
        task_names = tuple(
            n.strip() for n in (env.get(ENV_METRICS_TASKS) or "").split(",") if n.strip()
        )
        top_n = _int(env, ENV_METRICS_TASK_TOP_N, 0)
        if not 0 <= top_n <= MAX_METRICS_TASKS:
            raise ConfigError(f"{ENV_METRICS_TASK_TOP_N} must be between 0 and {MAX_METRICS_TASKS}")
        return cls(
            log_level=level,
            log_format=fmt,
            access_log=access is not False,
            secure_cookies=secure_cookies,
            metrics_task_names=task_names,
            metrics_task_top_n=top_n,
            host=host or env.get(ENV_HOST) or DEFAULT_HOST,
            audit_key=audit_key,
            audit_key_file=key_file,
            leader_lock_key=_int(env, ENV_LEADER_LOCK_KEY, 0) if lock_key else None,
            port=resolved_port,
            database=target,
            retention_seconds=days * 86400.0,
            fire_retention_seconds=fire_days * 86400.0,
            purge_interval_seconds=purge_every,
            limits=limits,
            admin_token=env.get(ENV_ADMIN_TOKEN) or None,
            tls_certfile=Path(cert).expanduser() if cert is not None else None,
            tls_keyfile=Path(key).expanduser() if key is not None else None,
            auth_failure_limit=failure_limit,
            session_idle_seconds=idle,
            session_max_seconds=longest,
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


def _bool(env: Mapping[str, str], name: str) -> bool | None:
    """A yes/no setting (1/0, true/false, yes/no, on/off); None when it is not set."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true or false), not {raw!r}")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None


# -- the TOML file (z4j brain serve --config brain.toml) -----------------------------------------


@dataclass(frozen=True)
class Setting:
    """One key of ``brain.toml``: the environment variable it stands for (the environment and
    the command's flags override the file), its TOML type, and what it does."""

    key: str
    env: str
    kind: type
    doc: str
    default: str
    flag: str = ""
    #: A file path, resolved against the TOML file's folder when relative.
    path: bool = False


#: Every setting the file may hold, in the order docs/operations.md lists them.
SETTINGS: Final = (
    Setting("server.host", ENV_HOST, str, "address to bind", DEFAULT_HOST, "--host"),
    Setting("server.port", ENV_PORT, int, "port to bind (0: any free one)", str(DEFAULT_PORT),
            "--port"),
    Setting("tls.certfile", ENV_TLS_CERTFILE, str,
            "TLS certificate (PEM): serve https:// and wss:// on the same port", "none",
            "--certfile", path=True),
    Setting("tls.keyfile", ENV_TLS_KEYFILE, str, "the certificate's private key", "none",
            "--keyfile", path=True),
    Setting("store.database", ENV_DATABASE_URL, str,
            "SQLite file or postgresql:// URL", "$Z4J_HOME/brain.sqlite3", "--database",
            path=True),
    Setting("store.event_retention_days", ENV_RETENTION_DAYS, float,
            "events (and tasks not updated) older than this are purged",
            f"{DEFAULT_RETENTION_DAYS:g}"),
    Setting("store.fire_retention_days", ENV_FIRE_RETENTION_DAYS, float,
            "settled fires older than this are purged; a backfill reaches no further back",
            f"{DEFAULT_FIRE_RETENTION_DAYS:g}"),
    Setting("store.purge_interval_seconds", ENV_PURGE_INTERVAL, float,
            "how often each brain purges what retention no longer keeps",
            f"{PURGE_INTERVAL_SECONDS:g}"),
    Setting("store.audit_key", ENV_AUDIT_KEY, str,
            "the audit log's HMAC key, 16 characters or more; the same on every brain of a "
            "database", "a file beside the database, made at first start"),
    Setting("store.leader_lock_key", ENV_LEADER_LOCK_KEY, int,
            "Postgres advisory-lock key of the scheduler leader", "a fixed key"),
    Setting("auth.admin_token", ENV_ADMIN_TOKEN, str,
            "the admin token a new database gets (ignored once it has one)", "a random one, "
            "printed once"),
    Setting("auth.failure_limit", ENV_AUTH_FAILURE_LIMIT, int,
            "bad tokens one address may present per minute before HTTP 429",
            str(DEFAULT_AUTH_FAILURE_LIMIT)),
    Setting("auth.session_idle_seconds", ENV_SESSION_IDLE, float,
            "a web session ends after this long without a request",
            f"{DEFAULT_SESSION_IDLE_SECONDS:g}"),
    Setting("auth.session_max_seconds", ENV_SESSION_MAX, float,
            "a web session ends this long after it was opened, whatever",
            f"{DEFAULT_SESSION_MAX_SECONDS:g}"),
    Setting("auth.secure_cookies", ENV_SECURE_COOKIES, bool,
            "mark the web session cookie Secure; set true behind a proxy that terminates TLS",
            "true when the brain serves TLS itself"),
    Setting("link.heartbeat_seconds", ENV_HEARTBEAT, float,
            "heartbeat interval announced to agents", f"{DEFAULT_HEARTBEAT_SECONDS:g}"),
    Setting("link.window", ENV_WINDOW, int,
            "unacknowledged event batches an agent may have in flight", str(DEFAULT_WINDOW)),
    Setting("link.max_batch_events", ENV_MAX_BATCH_EVENTS, int, "events per batch, at most",
            str(MAX_BATCH_EVENTS)),
    Setting("link.max_frame_bytes", ENV_MAX_FRAME_BYTES, int, "bytes per frame, at most",
            str(MAX_FRAME_BYTES)),
    Setting("log.level", ENV_LOG_LEVEL, str, "debug, info, warning or error", "info",
            "--log-level"),
    Setting("log.format", ENV_LOG_FORMAT, str,
            "text (one line per record) or json (one object per line)", "text", "--log-format"),
    Setting("log.access_log", ENV_ACCESS_LOG, bool,
            "log each HTTP API request (method, path, status, duration; never a token)",
            "true"),
    Setting("metrics.task_names", ENV_METRICS_TASKS, list,
            "task names that get a label of their own in /metrics", "[]"),
    Setting("metrics.task_top_n", ENV_METRICS_TASK_TOP_N, int,
            "besides those, how many of the first task names seen get one", "0"),
)  # fmt: skip

_TYPE_NAMES: Final = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                      list: "a list of strings"}  # fmt: skip


def read_config_file(path: str | Path) -> dict[str, str]:
    """The settings of a ``brain.toml``, as the environment variables they stand for.

    Raises ``ConfigError`` naming the file and the key: a file that is missing or not TOML, an
    unknown key (with the nearest known one), a value of the wrong type.
    """
    import difflib
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

    file = Path(path).expanduser()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not a text file (TOML is UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    known = {s.key: s for s in SETTINGS}
    values: dict[str, str] = {}
    errors: list[str] = []
    for key, value in _flatten(data):
        setting = known.get(key)
        if setting is None:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"unknown setting {key!r}{hint}")
            continue
        text = _as_env(setting, value, file.parent)
        if text is None:
            errors.append(
                f"{key} must be {_TYPE_NAMES[setting.kind]}, not {type(value).__name__} {value!r}"
            )
            continue
        values[setting.env] = text
    if errors:
        raise ConfigError(f"{file}: " + "; ".join(errors))
    return values


def _flatten(data: Mapping[str, object], prefix: str = "") -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and not prefix:
            items.extend(_flatten(value, full + "."))
        else:
            items.append((full, value))
    return items


def _as_env(setting: Setting, value: object, folder: Path) -> str | None:
    """``value`` as the environment variable's text, or None when its type is wrong."""
    kind = setting.kind
    if kind is bool:
        return ("1" if value else "0") if isinstance(value, bool) else None
    if kind is int:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return str(value) if ok else None
    if kind is list:
        if not isinstance(value, list) or not all(
            isinstance(v, str) and v and "," not in v for v in value
        ):
            return None
        return ",".join(value)
    if not isinstance(value, str):
        return None
    if setting.path and not is_postgres(value) and not Path(value).expanduser().is_absolute():
        return str(folder / value)
    return value


def load_with_file(
    path: str | Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    database: str | Path | None = None,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
) -> BrainConfig:
    """``BrainConfig.load`` with a ``brain.toml`` under the environment: flags win, then
    ``Z4J_*`` variables, then the file, then defaults. Errors name the file's key."""
    env: Mapping[str, str] = os.environ
    from_file: dict[str, str] = {}
    if path is not None:
        from_file = read_config_file(path)
        env = {**from_file, **os.environ}
        if ENV_DATABASE_URL in from_file and ENV_DATABASE in os.environ:
            # Z4J_DATABASE (the older name) set in the environment still beats the file.
            env = {**env, ENV_DATABASE_URL: os.environ[ENV_DATABASE]}
    try:
        return BrainConfig.load(
            host=host,
            port=port,
            database=database,
            certfile=certfile,
            keyfile=keyfile,
            log_level=log_level,
            log_format=log_format,
            env=env,
        )
    except ConfigError as exc:
        message = str(exc)
        for setting in SETTINGS:
            if setting.env in from_file and setting.env not in os.environ:
                message = message.replace(setting.env, f"{setting.key} (in {path})")
        raise ConfigError(message) from None
