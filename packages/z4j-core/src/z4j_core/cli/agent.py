"""`z4j agent check`: connect as an agent would and prove the whole path works.

Completes the handshake, sends one test event, waits for its acknowledgement and prints the
round-trip time. Any failure ends within the deadline with one line naming the cause (refused
token, unreachable brain, TLS, protocol) and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import time
import uuid
from typing import Any

from z4j_core import __version__
from z4j_core.cli import CLIError

CHECK_DEADLINE = 15.0


def register(subparsers: Any) -> None:
    agent = subparsers.add_parser("agent", help="agent tools")
    actions = agent.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="connect to the brain as an agent, send a test event, wait for its ack"
    )
    check.add_argument("--brain-url", help="the brain's URL (default $Z4J_BRAIN_URL)")
    check.add_argument("--token", help="an agent token (default $Z4J_TOKEN)")
    check.add_argument("--app", default=None, help="app name to announce (default $Z4J_APP)")
    check.add_argument("--ca-bundle", help="CA bundle to verify the brain (default system)")
    check.add_argument("--timeout", type=float, default=CHECK_DEADLINE, help="seconds (15)")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from z4j_core.agent.config import AgentConfig, ConfigError

    try:
        config = AgentConfig.load(
            brain_url=args.brain_url,
            token=args.token,
            app_name=args.app,
            ca_bundle=args.ca_bundle,
        )
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    if not config.token:
        raise CLIError("no token: pass --token or set Z4J_TOKEN (create one: z4j tokens create)")
    try:
        rtt = asyncio.run(asyncio.wait_for(_check(config), args.timeout))
    except asyncio.TimeoutError:
        raise CLIError(
            f"no answer from {config.websocket_url} within {args.timeout:.0f} s "
            "(is the brain running and reachable from here?)",
            exit_code=1,
        ) from None
    print(
        f"ok: connected to {config.websocket_url}, test event acknowledged in {rtt * 1000:.1f} ms"
    )
    return 0


async def _check(config: Any) -> float:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

    from z4j_core.wire import (
        MAX_FRAME_BYTES,
        PROTOCOL_VERSION,
        Ack,
        AgentSession,
        Error,
        Event,
        EventBatch,
        Hello,
        LifecycleKind,
        ProtocolError,
    )

    hello = Hello(
        protocol_version=PROTOCOL_VERSION,
        agent_instance=f"check-{uuid.uuid4().hex}",
        app=config.app_name or "z4j-agent-check",
        host=socket.gethostname(),
        pid=os.getpid(),
        agent_version=__version__,
    )
    url = config.websocket_url
    context = ssl.create_default_context(cafile=config.ca_bundle) if url.startswith("wss") else None
    try:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {config.token}"},
            ssl=context,
            max_size=MAX_FRAME_BYTES,
            ping_interval=None,
            open_timeout=CHECK_DEADLINE,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise CLIError(f"the brain refused the token (HTTP {status})", exit_code=1) from None
        raise CLIError(f"the brain answered HTTP {status} instead of a WebSocket", 1) from None
    except ssl.SSLError as exc:
        raise CLIError(f"TLS failed: {exc.reason or exc}", exit_code=1) from None
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        raise CLIError(f"cannot reach {url}: {exc}", exit_code=1) from None
    try:
        session = AgentSession(config.token, hello)
        began = time.monotonic()
        await ws.send(session.start(began))
        frames = session.receive(await ws.recv(decode=False), time.monotonic())
        if frames and isinstance(frames[0], Error):
            raise CLIError(f"the brain refused the agent: {frames[0].message}", exit_code=1)
        event = Event(
            seq=0,
            kind=LifecycleKind.SUCCEEDED,
            at=time.time(),
            engine="z4j",
            task_id=f"agent-check-{uuid.uuid4().hex[:12]}",
            task_name="z4j.agent.check",
        )
        sent = time.monotonic()
        await ws.send(session.send(EventBatch(first_seq=0, events=[event]), sent))
        while True:
            for frame in session.receive(await ws.recv(decode=False), time.monotonic()):
                if isinstance(frame, Ack):
                    rtt = time.monotonic() - sent
                    await ws.send(session.close(now=time.monotonic()))
                    return rtt
                if isinstance(frame, Error):
                    raise CLIError(f"the brain reported: {frame.message}", exit_code=1)
    except ProtocolError as exc:
        raise CLIError(f"protocol error: {exc.reason}", exit_code=1) from None
    finally:
        await ws.close()
