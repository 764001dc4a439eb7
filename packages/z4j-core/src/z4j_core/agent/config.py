"""The agent's configuration: explicit arguments, then `Z4J_*` environment variables, then defaults.

Read once, when an agent is created; never at import time. Every variable name is declared here
and documented in docs/operations.md. Must never log the token.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from z4j_core.endpoints import AGENT_PATH, DEFAULT_AGENT_URL
from z4j_core.wire.limits import DEFAULT_ORIGINALS_BYTES, DEFAULT_ORIGINALS_TTL_SECONDS

ENV_BRAIN_URL = "Z4J_BRAIN_URL"
ENV_TOKEN = "Z4J_TOKEN"
ENV_APP = "Z4J_APP"
ENV_LABELS = "Z4J_LABELS"
ENV_DISABLED = "Z4J_DISABLED"
ENV_ALLOW_INSECURE = "Z4J_ALLOW_INSECURE"
ENV_SPOOL_DIR = "Z4J_SPOOL_DIR"
ENV_MEMORY_EVENTS = "Z4J_MAX_MEMORY_EVENTS"
ENV_SPOOL_BYTES = "Z4J_MAX_SPOOL_BYTES"
ENV_DRAIN_TIMEOUT = "Z4J_DRAIN_TIMEOUT"
ENV_REDACT_KEYS = "Z4J_REDACT_KEYS"
ENV_CA_BUNDLE = "Z4J_CA_BUNDLE"
ENV_COMMAND_CONCURRENCY = "Z4J_COMMAND_CONCURRENCY"
ENV_ORIGINALS_BYTES = "Z4J_MAX_ORIGINALS_BYTES"
ENV_ORIGINALS_TTL = "Z4J_ORIGINALS_TTL"

DEFAULT_BRAIN_URL = DEFAULT_AGENT_URL

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the value and what to do."""


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def parse_labels(raw: str) -> dict[str, str]:
    """`team=billing,region=eu` -> {"team": "billing", "region": "eu"}."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"label {item!r} is not key=value (labels look like team=a,env=b)")
        labels[key.strip()] = value.strip()
    return labels


def _default_spool_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"z4j-spool-{os.getuid()}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent reads from its environment, validated."""

    brain_url: str = DEFAULT_BRAIN_URL
    token: str = field(default="", repr=False)
    app_name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    disabled: bool = False
    allow_insecure: bool = False
    spool_dir: str = field(default_factory=_default_spool_dir)
    max_memory_events: int = 10_000
    max_spool_bytes: int = 256 * 1024 * 1024
    drain_timeout: float = 5.0
    redact_keys: tuple[str, ...] = ()
    ca_bundle: str | None = None
    command_concurrency: int = 16
    max_originals_bytes: int = DEFAULT_ORIGINALS_BYTES
    originals_ttl: float = DEFAULT_ORIGINALS_TTL_SECONDS
    host: str = field(default_factory=socket.gethostname)

    def __post_init__(self) -> None:
        url = urlsplit(self.brain_url)
        if url.scheme not in ("ws", "wss", "http", "https"):
            raise ConfigError(
                f"brain URL {self.brain_url!r} must start with wss:// (or ws:// on loopback)"
            )
        if not url.hostname:
            raise ConfigError(f"brain URL {self.brain_url!r} has no host")
        if url.scheme in ("ws", "http") and not (_is_loopback(url.hostname) or self.allow_insecure):
            raise ConfigError(
                f"brain URL {self.brain_url!r} is unencrypted ws:// to a non-loopback host; "
                f"use wss://, or set {ENV_ALLOW_INSECURE}=1 if you really mean it"
            )
        if self.max_memory_events < 1000:
            raise ConfigError(f"max_memory_events={self.max_memory_events} must be at least 1000")
        if self.drain_timeout < 0:
            raise ConfigError(f"drain_timeout={self.drain_timeout} must not be negative")
        if self.command_concurrency < 1:
            raise ConfigError(f"command_concurrency={self.command_concurrency} must be >= 1")
        if self.max_originals_bytes < 0:
            raise ConfigError(
                f"max_originals_bytes={self.max_originals_bytes} must not be negative "
                "(0 keeps no original message, so retries need the engine's own record)"
            )
        if self.originals_ttl <= 0:
            raise ConfigError(f"originals_ttl={self.originals_ttl} must be positive (seconds)")

    @property
    def websocket_url(self) -> str:
        """The URL to connect to: http(s) becomes ws(s), and a bare host gets the agent path."""
        url = urlsplit(self.brain_url)
        scheme = {"http": "ws", "https": "wss"}.get(url.scheme, url.scheme)
        path = url.path if url.path not in ("", "/") else AGENT_PATH
        query = f"?{url.query}" if url.query else ""
        return f"{scheme}://{url.netloc}{path}{query}"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> AgentConfig:
        """Explicit keyword arguments win over `Z4J_*` variables, which win over defaults."""
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        unknown = set(explicit) - known
        if unknown:
            raise ConfigError(f"unknown agent option(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        readers: dict[str, tuple[str, Any]] = {
            "brain_url": (ENV_BRAIN_URL, str),
            "token": (ENV_TOKEN, str),
            "app_name": (ENV_APP, str),
            "labels": (ENV_LABELS, parse_labels),
            "disabled": (ENV_DISABLED, lambda raw: _parse_bool(ENV_DISABLED, raw)),
            "allow_insecure": (ENV_ALLOW_INSECURE, lambda r: _parse_bool(ENV_ALLOW_INSECURE, r)),
            "spool_dir": (ENV_SPOOL_DIR, str),
            "max_memory_events": (ENV_MEMORY_EVENTS, lambda r: _int(ENV_MEMORY_EVENTS, r)),
            "max_spool_bytes": (ENV_SPOOL_BYTES, lambda r: _int(ENV_SPOOL_BYTES, r)),
            "drain_timeout": (ENV_DRAIN_TIMEOUT, lambda r: _float(ENV_DRAIN_TIMEOUT, r)),
            "redact_keys": (ENV_REDACT_KEYS, _parse_keys),
            "ca_bundle": (ENV_CA_BUNDLE, str),
            "command_concurrency": (
                ENV_COMMAND_CONCURRENCY,
                lambda r: _int(ENV_COMMAND_CONCURRENCY, r),
            ),
            "max_originals_bytes": (ENV_ORIGINALS_BYTES, lambda r: _int(ENV_ORIGINALS_BYTES, r)),
            "originals_ttl": (ENV_ORIGINALS_TTL, lambda r: _float(ENV_ORIGINALS_TTL, r)),
        }
        for name, (variable, parse) in readers.items():
            if name in explicit and explicit[name] is not None:
                value = explicit[name]
                if name == "labels" and isinstance(value, str):
                    value = parse_labels(value)
                if name == "redact_keys" and isinstance(value, str):
                    value = _parse_keys(value)
                values[name] = value
            elif env.get(variable):
                values[name] = parse(env[variable])
        for name in known - set(readers):
            if name in explicit and explicit[name] is not None:
                values[name] = explicit[name]
        if "labels" in values:
            values["labels"] = dict(values["labels"])
        if "redact_keys" in values:
            values["redact_keys"] = tuple(values["redact_keys"])
        return cls(**values)


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None


def _float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None


def _parse_keys(raw: str) -> tuple[str, ...]:
    return tuple(key.strip().lower() for key in raw.split(",") if key.strip())
