"""The operator CLI's client of the brain's HTTP API, on the standard library alone.

Owns where the brain is (``--brain-url`` / ``Z4J_BRAIN_URL``), the token it presents (an
operator's: ``--token`` / ``Z4J_OPERATOR_TOKEN``, else the admin token: ``--admin-token`` /
``Z4J_ADMIN_TOKEN``), TLS verification (the system trust store, or
``--ca-bundle`` / ``Z4J_CA_BUNDLE``), each falling back to the chosen profile (``--profile`` /
``Z4J_PROFILE``, see ``cli.profiles``) and then to defaults, and turning every failure into
one line with a non-zero exit (``CLIError``): connection refused, a refused token, rate
limiting, a TLS failure, a timeout, an error answer. Never prints or logs the admin token.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any, Final

from z4j_core.cli import CLIError
from z4j_core.endpoints import AGENT_PATH, API_PREFIX, DEFAULT_HTTP_URL

if TYPE_CHECKING:
    import ssl

# urllib, ssl and http.client are imported when a request is made: every `z4j` run builds the
# parser (and so imports this module), and most never talk to a brain.

ENV_BRAIN_URL: Final = "Z4J_BRAIN_URL"
ENV_ADMIN_TOKEN: Final = "Z4J_ADMIN_TOKEN"
ENV_OPERATOR_TOKEN: Final = "Z4J_OPERATOR_TOKEN"
#: How operator tokens start (the brain's ``access.OPERATOR_PREFIX``).
OPERATOR_PREFIX: Final = "z4j_op_"
ENV_CA_BUNDLE: Final = "Z4J_CA_BUNDLE"
DEFAULT_BRAIN_URL: Final = DEFAULT_HTTP_URL
DEFAULT_TIMEOUT: Final = 30.0
API: Final = API_PREFIX

#: Exit code when the brain could not be reached or answered an error (2 is a usage error).
EXIT_FAILED: Final = 1


#: The most rows one page of a list route holds (the brain's own cap).
MAX_PAGE: Final = 10000


def add_page_arguments(parser: argparse.ArgumentParser, default_limit: int) -> None:
    """``--limit`` and ``--cursor``: the options of every command that lists a paged route."""
    parser.add_argument(
        "--limit",
        type=int,
        default=default_limit,
        help=f"at most this many, 1 to {MAX_PAGE} ({default_limit})",
    )
    parser.add_argument(
        "--cursor",
        help="start after the previous page (the cursor a previous run printed)",
    )


def page_query(args: argparse.Namespace) -> dict[str, Any]:
    """The ``limit`` and ``cursor`` query parameters of ``add_page_arguments``'s options."""
    if not 1 <= args.limit <= MAX_PAGE:
        raise CLIError(f"--limit must be between 1 and {MAX_PAGE}")
    return {"limit": args.limit, "cursor": args.cursor}


def print_next_cursor(answer: dict[str, Any]) -> None:
    """When a page has a next one, say how to get it (on stderr: stdout stays the rows, JSON
    included)."""
    cursor = answer.get("next_cursor")
    if cursor:
        import sys

        print(f"z4j: more rows: run again with --cursor {cursor}", file=sys.stderr)


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that talks to the brain takes (and ``--tz``)."""
    from z4j_core.cli import add_display_arguments
    from z4j_core.cli.profiles import ENV_PROFILE

    group = parser.add_argument_group(
        "brain connection (each option, else its variable, else the profile, else the default)"
    )
    group.add_argument(
        "--brain-url",
        help=f"the brain's URL (${ENV_BRAIN_URL}, the profile, else {DEFAULT_BRAIN_URL})",
    )
    group.add_argument(
        "--admin-token", help=f"the admin token (${ENV_ADMIN_TOKEN}, else the profile's)"
    )
    group.add_argument(
        "--token", help=f"your operator token (${ENV_OPERATOR_TOKEN}, else the admin token)"
    )
    group.add_argument(
        "--ca-bundle", help=f"CA bundle to verify the brain's certificate (${ENV_CA_BUNDLE})"
    )
    group.add_argument(
        "--profile",
        metavar="NAME",
        help=f"use this saved profile (${ENV_PROFILE}, else the current one: z4j profiles)",
    )
    group.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per request (30)"
    )
    add_display_arguments(parser)


def http_base_url(url: str) -> str:
    """``url`` as the API's base: an agent URL (``wss://host/v1/agent``) works too."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        raise CLIError(f"brain URL {url!r} must start with http:// or https://")
    scheme, rest = url.split("://", 1)
    scheme = {"ws": "http", "wss": "https"}.get(scheme.lower(), scheme.lower())
    if scheme not in ("http", "https"):
        raise CLIError(f"brain URL {url!r} must start with http:// or https://")
    if rest.endswith(AGENT_PATH):
        rest = rest[: -len(AGENT_PATH)]
    return f"{scheme}://{rest}"


class BrainClient:
    """Calls ``/api/v1/...`` and returns the decoded JSON; raises ``CLIError`` on any failure."""

    def __init__(
        self,
        base_url: str,
        admin_token: str | None,
        *,
        ca_bundle: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = http_base_url(base_url)
        self.admin_token = admin_token
        self.timeout = timeout
        self._token_kind = (
            "operator token" if (admin_token or "").startswith(OPERATOR_PREFIX) else "admin token"
        )
        self._context: ssl.SSLContext | None = None
        if self.base_url.startswith("https://"):
            import ssl

            try:
                self._context = ssl.create_default_context(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise CLIError(f"cannot read the CA bundle {ca_bundle!r}: {exc}") from None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BrainClient:
        """From the command's options, then ``Z4J_*`` variables, then the profile (``--profile``,
        ``Z4J_PROFILE`` or the current one), then defaults."""
        from z4j_core.cli.profiles import chosen_profile

        env = os.environ
        profile = chosen_profile(getattr(args, "profile", None))
        saved = profile.settings if profile is not None else {}
        url = getattr(args, "brain_url", None) or env.get(ENV_BRAIN_URL)
        if url and saved and http_base_url(url) != saved.get("brain_url"):
            saved = {}  # a profile's token and CA bundle go to its own brain, never another
        return cls(
            url or saved.get("brain_url") or DEFAULT_BRAIN_URL,
            getattr(args, "token", None)
            or env.get(ENV_OPERATOR_TOKEN)
            or getattr(args, "admin_token", None)
            or env.get(ENV_ADMIN_TOKEN)
            or saved.get("admin_token")
            or None,
            ca_bundle=getattr(args, "ca_bundle", None)
            or env.get(ENV_CA_BUNDLE)
            or saved.get("ca_bundle")
            or None,
            timeout=getattr(args, "timeout", None) or DEFAULT_TIMEOUT,
        )

    def get(self, path: str, query: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.request("GET", path, query=query, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("POST", path, body=body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, Any] | None = None,
        timeout: float | None = None,
        expected: tuple[int, ...] = (),
    ) -> Any:
        """``path`` is below ``/api/v1`` (or absolute when it starts with ``/`` and not ``/api``
        is wanted: pass the full path). Answers whose status is in ``expected`` are returned as
        ``(status, body)`` instead of raising."""
        import http.client
        import ssl
        import urllib.error
        import urllib.parse
        import urllib.request

        if self.admin_token is None:
            raise CLIError(
                f"no admin token or operator token: pass --token (or set {ENV_OPERATOR_TOKEN}) "
                f"with yours, or --admin-token (or set {ENV_ADMIN_TOKEN}), or save a profile "
                "with z4j login "
                "(the brain printed it on its first start; lost it? run "
                "z4j brain admin-token --rotate where its database is)"
            )
        url = self.base_url + (path if path.startswith("/") else f"{API}/{path}")
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.admin_token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        wait = timeout if timeout is not None else self.timeout
        try:
            with urllib.request.urlopen(request, timeout=wait, context=self._context) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            with exc:
                status, raw = exc.code, exc.read()
                retry_after = exc.headers.get("Retry-After")
            if status in expected:
                return status, _decode(raw)
            raise self._http_error(method, path, status, raw, retry_after) from None
        except urllib.error.URLError as exc:
            raise self._connection_error(exc.reason, wait) from None
        except (OSError, ssl.SSLError) as exc:  # a reset or timeout while reading the answer
            raise self._connection_error(exc, wait) from None
        except http.client.HTTPException as exc:
            raise CLIError(
                f"the brain at {self.base_url} answered something that is not HTTP "
                f"({type(exc).__name__}; is it serving https?)",
                EXIT_FAILED,
            ) from None
        decoded = _decode(raw)
        return (status, decoded) if expected else decoded

    def _http_error(
        self, method: str, path: str, status: int, raw: bytes, retry_after: str | None
    ) -> CLIError:
        message = _error_message(raw)
        if status == 401:
            return CLIError(
                f"the brain at {self.base_url} refused the {self._token_kind} (HTTP 401): check "
                f"--token / {ENV_OPERATOR_TOKEN} or --admin-token / {ENV_ADMIN_TOKEN} (revoked "
                "or expired? ask an admin; lost the admin token? z4j brain admin-token --rotate)",
                EXIT_FAILED,
            )
        if status == 403:
            return CLIError(f"not allowed (HTTP 403): {message or 'refused'}", EXIT_FAILED)
        if status == 429:
            wait = f" in {retry_after} s" if retry_after else " later"
            return CLIError(
                f"the brain refuses this address after too many bad tokens (HTTP 429): "
                f"try again{wait}",
                EXIT_FAILED,
            )
        if status == 404 and message is None:
            return CLIError(
                f"the brain at {self.base_url} has no {method} {path} (HTTP 404): "
                "is it a z4j brain of the same version?",
                EXIT_FAILED,
            )
        return CLIError(message or f"the brain answered HTTP {status}", EXIT_FAILED)

    def _connection_error(self, reason: object, wait: float) -> CLIError:
        import socket
        import ssl

        where = self.base_url
        if isinstance(reason, ssl.SSLCertVerificationError):
            detail = reason.verify_message or reason.reason or "?"
            return CLIError(
                f"TLS failed with {where}: certificate verify failed: {detail} "
                f"(pass --ca-bundle or set {ENV_CA_BUNDLE} to the CA that signed the brain's "
                "certificate)",
                EXIT_FAILED,
            )
        if isinstance(reason, ssl.SSLError):
            detail = reason.reason or str(reason)
            hint = " (is the brain serving plain http?)" if "WRONG_VERSION" in str(detail) else ""
            return CLIError(f"TLS failed with {where}: {detail}{hint}", EXIT_FAILED)
        if isinstance(reason, ConnectionRefusedError):
            return CLIError(
                f"cannot reach the brain at {where}: connection refused (is z4j brain serve "
                f"running there? set --brain-url or {ENV_BRAIN_URL})",
                EXIT_FAILED,
            )
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return CLIError(f"no answer from the brain at {where} within {wait:g} s", EXIT_FAILED)
        if isinstance(reason, socket.gaierror):
            return CLIError(f"cannot reach the brain at {where}: unknown host", EXIT_FAILED)
        if isinstance(reason, ConnectionResetError) and where.startswith("http://"):
            return CLIError(
                f"the brain at {where} closed the connection (is it serving https?)", EXIT_FAILED
            )
        text = getattr(reason, "strerror", None) or str(reason)
        return CLIError(f"cannot reach the brain at {where}: {text}", EXIT_FAILED)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise CLIError(
            "the brain's answer is not JSON (is the URL a z4j brain?)", EXIT_FAILED
        ) from None


def _error_message(raw: bytes) -> str | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None
