"""Finding the local services tests need, and giving each test run its own slice of them.

Owns: whether Redis, PostgreSQL and RabbitMQ answer on their usual local ports, and the
per-run identity (Redis database number, Postgres database name, advisory-lock key base) that
keeps two test runs on one machine from colliding. Speaks only plain sockets and RESP, so it
needs no database driver.
"""

from __future__ import annotations

import os
import socket
import uuid
import zlib
from dataclasses import dataclass

RUN_ID_ENV = "Z4J_TEST_RUN_ID"


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    start_hint: str

    def reachable(self, timeout: float = 1.0) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                return True
        except OSError:
            return False

    def unreachable_reason(self) -> str:
        return (
            f"{self.name} is not reachable at {self.host}:{self.port}; "
            f"start it with: {self.start_hint}"
        )


SERVICES = {
    "redis": Service(
        "Redis",
        os.environ.get("Z4J_TEST_REDIS_HOST", "127.0.0.1"),
        int(os.environ.get("Z4J_TEST_REDIS_PORT", "6379")),
        "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''",
    ),
    "postgres": Service(
        "PostgreSQL",
        os.environ.get("Z4J_TEST_PG_HOST", "127.0.0.1"),
        int(os.environ.get("Z4J_TEST_PG_PORT", "5432")),
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "rabbitmq": Service(
        "RabbitMQ",
        os.environ.get("Z4J_TEST_AMQP_HOST", "127.0.0.1"),
        int(os.environ.get("Z4J_TEST_AMQP_PORT", "5672")),
        "rabbitmq-server -detached",
    ),
}


def redis_url(database: int, service: Service | None = None) -> str:
    """The URL of one Redis database of the (possibly moved) local Redis service."""
    service = service or SERVICES["redis"]
    return f"redis://{service.host}:{service.port}/{database}"


def run_id() -> str:
    """This test run's id: set once per run (the test command exports it), else made here."""
    value = os.environ.get(RUN_ID_ENV)
    if not value:
        value = uuid.uuid4().hex[:12]
        os.environ[RUN_ID_ENV] = value
    return value


def advisory_lock_base() -> int:
    """A 31-bit base for Postgres advisory-lock keys that differs between test runs."""
    return zlib.crc32(run_id().encode()) & 0x7FFF0000


def postgres_database_name() -> str:
    """The database this run creates and drops on the test server."""
    return f"z4j_test_{run_id()}"


def _resp_command(sock: socket.socket, *parts: str) -> bytes:
    payload = f"*{len(parts)}\r\n".encode()
    for part in parts:
        data = part.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    sock.sendall(payload)
    return sock.recv(4096)


def claim_redis_database(
    service: Service | None = None, ttl_seconds: int = 3 * 3600, first: int = 1, last: int = 15
) -> int:
    """Claim a Redis database number for this run, so concurrent runs never share one.

    Claims are keys in database 0 set with NX and a TTL; a run that died frees its number when
    the TTL runs out. The claimed database is flushed before use.
    """
    service = service or SERVICES["redis"]
    me = run_id()
    with socket.create_connection((service.host, service.port), timeout=5) as sock:
        for number in range(first, last + 1):
            key = f"z4j:test-run-db:{number}"
            reply = _resp_command(sock, "SET", key, me, "NX", "EX", str(ttl_seconds))
            if reply.startswith(b"+OK") or _resp_command(sock, "GET", key).endswith(
                f"{me}\r\n".encode()
            ):
                _resp_command(sock, "SELECT", str(number))
                _resp_command(sock, "FLUSHDB")
                return number
    raise RuntimeError(
        f"every Redis database {first}..{last} is claimed by another test run; "
        "wait for it to finish or delete the keys z4j:test-run-db:* in database 0"
    )


def release_redis_database(number: int, service: Service | None = None) -> None:
    service = service or SERVICES["redis"]
    with socket.create_connection((service.host, service.port), timeout=5) as sock:
        _resp_command(sock, "DEL", f"z4j:test-run-db:{number}")
