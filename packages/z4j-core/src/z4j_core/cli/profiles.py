"""Saved connection profiles, the way kubectl contexts work: `z4j login`, `z4j profiles
list|use|rm`, and ``--profile NAME`` / ``Z4J_PROFILE`` on every command that talks to the brain.

Owns the profiles file (``profiles.json`` in the user's config folder: ``$Z4J_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/z4j``, else ``~/.config/z4j``; ``%APPDATA%\\z4j`` on Windows), written
atomically with mode 600 in a folder of mode 700, since it holds admin tokens. A profile gives
defaults only: options and ``Z4J_*`` variables still override it. Never prints a token.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from z4j_core.cli import CLIError

ENV_PROFILE: Final = "Z4J_PROFILE"
ENV_CONFIG_DIR: Final = "Z4J_CONFIG_DIR"
PROFILES_FILE: Final = "profiles.json"
DEFAULT_PROFILE: Final = "default"
#: The settings a profile may hold.
SETTINGS: Final = ("brain_url", "admin_token", "ca_bundle")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Profile:
    name: str
    settings: dict[str, str]


def config_dir() -> Path:
    env = os.environ
    if env.get(ENV_CONFIG_DIR):
        return Path(env[ENV_CONFIG_DIR])
    if sys.platform == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "z4j"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "z4j"


def profiles_path() -> Path:
    return config_dir() / PROFILES_FILE


def load() -> dict[str, Any]:
    """The profiles file as ``{"current": name | None, "profiles": {name: settings}}``."""
    path = profiles_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"current": None, "profiles": {}}
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read the profiles file {path}: {exc} (fix or remove it)") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise CLIError(f"the profiles file {path} is not a z4j profiles file (fix or remove it)")
    return {"current": data.get("current"), "profiles": data["profiles"]}


def save(data: dict[str, Any]) -> Path:
    """Write the profiles file atomically, readable by its owner alone."""
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / PROFILES_FILE
    temporary = folder / f".{PROFILES_FILE}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
        os.chmod(temporary, 0o600)  # the umask may have narrowed it; never widened
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _unknown(name: str, names: list[str]) -> CLIError:
    from z4j_core.cli.parser import did_you_mean

    known = ", ".join(sorted(names)) or "none yet: create one with z4j login"
    return CLIError(f"no profile named {name!r}{did_you_mean(name, names)} (profiles: {known})")


def chosen_profile(name: str | None) -> Profile | None:
    """The profile ``--profile`` or ``Z4J_PROFILE`` names (an unknown name is an error), else
    the current one, else None."""
    wanted = name or os.environ.get(ENV_PROFILE) or None
    data = load() if wanted or profiles_path().exists() else {"current": None, "profiles": {}}
    profiles: dict[str, Any] = data["profiles"]
    if wanted is not None:
        if wanted not in profiles:
            raise _unknown(wanted, list(profiles))
        return Profile(wanted, _settings(profiles[wanted]))
    current = data.get("current")
    if isinstance(current, str) and current in profiles:
        return Profile(current, _settings(profiles[current]))
    return None


def _settings(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {k: str(v) for k, v in raw.items() if k in SETTINGS and v}


# -- commands ----------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    from z4j_core.cli.http import DEFAULT_TIMEOUT, ENV_ADMIN_TOKEN, ENV_OPERATOR_TOKEN

    login = subparsers.add_parser(
        "login",
        help="save a brain's URL and your token as a profile (mode 600)",
        description=(
            "Check the token (an operator's, or the admin token) against the brain, then save "
            f"the URL, token and CA bundle as a profile in {profiles_path()} (readable by you "
            "alone) and make it the current one. The token is read from --token, else $"
            f"{ENV_OPERATOR_TOKEN}, else --admin-token, else ${ENV_ADMIN_TOKEN}, else standard "
            "input (a prompt on a terminal)."
        ),
    )
    login.add_argument("--brain-url", required=True, help="the brain's URL")
    login.add_argument("--token", help="your operator token (else asked for)")
    login.add_argument("--admin-token", help="the admin token (else asked for)")
    login.add_argument("--ca-bundle", help="CA bundle to verify the brain's certificate")
    login.add_argument(
        "--profile", metavar="NAME", default=DEFAULT_PROFILE, help="its name (default)"
    )
    login.add_argument(
        "--no-check", action="store_true", help="save without asking the brain first"
    )
    login.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds (30)")
    login.set_defaults(func=_login)

    profiles = subparsers.add_parser("profiles", help="list, switch and remove saved profiles")
    actions = profiles.add_subparsers(dest="action", metavar="ACTION")
    profiles.set_defaults(func=_list)
    listing = actions.add_parser("list", help="saved profiles (never their tokens)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_list)
    use = actions.add_parser("use", help="make a profile the current one")
    use.add_argument("name")
    use.set_defaults(func=_use)
    remove = actions.add_parser("rm", help="forget a profile and its token")
    remove.add_argument("name")
    remove.set_defaults(func=_remove)


def _read_token(args: argparse.Namespace) -> str:
    from z4j_core.cli.http import ENV_ADMIN_TOKEN, ENV_OPERATOR_TOKEN

    token = (
        args.token
        or os.environ.get(ENV_OPERATOR_TOKEN)
        or args.admin_token
        or os.environ.get(ENV_ADMIN_TOKEN)
    )
    if not token:
        if sys.stdin is not None and sys.stdin.isatty():
            import getpass

            token = getpass.getpass("token: ")
        elif sys.stdin is not None:
            token = sys.stdin.readline()
    token = (token or "").strip()
    if not token:
        raise CLIError(
            f"no token: pass --token (or set {ENV_OPERATOR_TOKEN}) or --admin-token (or set "
            f"{ENV_ADMIN_TOKEN}), or type it when asked"
        )
    return token


def _login(args: argparse.Namespace) -> int:
    from z4j_core.cli.http import BrainClient, http_base_url

    name = args.profile
    if not _NAME.match(name):
        raise CLIError(f"profile name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    url = http_base_url(args.brain_url)
    token = _read_token(args)
    if not args.no_check:
        client = BrainClient(url, token, ca_bundle=args.ca_bundle, timeout=args.timeout)
        client.get("agents", {"connected": "1"})  # a refused token or URL fails here, one line
    settings = {"brain_url": url, "admin_token": token}
    if args.ca_bundle:
        settings["ca_bundle"] = str(Path(args.ca_bundle).resolve())
    data = load()
    data["profiles"][name] = settings
    data["current"] = name
    path = save(data)
    print(f"saved profile {name!r} for {url} in {path} (mode 600); it is now the current one")
    return 0


def _list(args: argparse.Namespace) -> int:
    data = load()
    current = data.get("current")
    rows = [
        {
            "name": name,
            "current": name == current,
            "brain_url": _settings(raw).get("brain_url"),
            "ca_bundle": _settings(raw).get("ca_bundle"),
        }
        for name, raw in sorted(data["profiles"].items())
    ]
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no profiles (save one with z4j login --brain-url URL)", file=sys.stderr)
        return 0
    from z4j_core.cli.tables import print_table

    print_table(
        ("current", "name", "brain url", "ca bundle"),
        [("*" if r["current"] else "", r["name"], r["brain_url"], r["ca_bundle"]) for r in rows],
    )
    return 0


def _use(args: argparse.Namespace) -> int:
    data = load()
    if args.name not in data["profiles"]:
        raise _unknown(args.name, list(data["profiles"]))
    data["current"] = args.name
    save(data)
    print(f"now using profile {args.name!r}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    data = load()
    if args.name not in data["profiles"]:
        raise _unknown(args.name, list(data["profiles"]))
    del data["profiles"][args.name]
    if data.get("current") == args.name:
        data["current"] = None
    save(data)
    print(f"removed profile {args.name!r}")
    return 0
