"""Run as ``python -m tests.gateway.spray CONFIG_JSON``: password spraying through the
gateway's ユーザー認証 form, as issue 9 found it: CONNECTIONS keep-alive TLS connections from
one source address, each posting random (well-formed) user IDs with one password as fast
as the answers come, for SECONDS, spread over the gateway PORTS.

Prints one JSON line: the answers by status and the seconds it ran. A separate process, so
that its CPU use does not stall the test's own probes in the same interpreter.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import ssl
import string
import sys
import time
from collections import Counter
from urllib.parse import urlencode

from gateway.sessions import COOKIE_NAME
from tests.gateway.curl import csrf_token

_COOKIE = re.compile(COOKIE_NAME.encode() + rb"=([^;\r\n]+)")


def random_user_id(prefix: str) -> str:
    """A user ID the CA checks (6–12 letters and digits, at least one of each)."""
    alphabet = string.ascii_lowercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(5)) + secrets.choice("0123")


class Connection:
    def __init__(self, port: int, source: str, context: ssl.SSLContext) -> None:
        self.port, self.source, self.context = port, source, context
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open_form(self) -> tuple[bytes, str]:
        """GET /enroll/auth: (session cookie value, CSRF token)."""
        status, head, body = await self.exchange(
            b"GET /enroll/auth HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        cookie = _COOKIE.search(head)
        assert status == 200 and cookie, status
        return cookie.group(1), csrf_token(body.decode())

    async def exchange(self, request: bytes) -> tuple[int, bytes, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1",
                self.port,
                ssl=self.context,
                server_hostname="localhost",
                local_addr=(self.source, 0),
            )
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
        body = await self.reader.readexactly(int(length.group(1))) if length else b""
        if re.search(rb"\r\nconnection: *close", head, re.I):
            self.writer.close()
            self.writer = None
        return int(head.split(b" ", 2)[1]), head, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def auth_post(cookie: bytes, csrf: str, user_id: str, password: str) -> bytes:
    """The ユーザー認証 form's POST."""
    form = urlencode({"csrf": csrf, "user_id": user_id, "password": password}).encode()
    return (
        b"POST /enroll/auth HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Cookie: %b=%b\r\nContent-Length: %d\r\n\r\n%b"
    ) % (COOKIE_NAME.encode(), cookie, len(form), form)


async def _spray(
    port: int,
    source: str,
    context: ssl.SSLContext,
    deadline: float,
    password: str,
    prefix: str,
    counts: Counter[str],
) -> None:
    connection = Connection(port, source, context)
    cookie, csrf = await connection.open_form()
    while time.monotonic() < deadline:
        request = auth_post(cookie, csrf, random_user_id(prefix), password)
        try:
            status, _, _ = await connection.exchange(request)
        except (OSError, asyncio.IncompleteReadError):
            counts["broken"] += 1
            connection.writer = None
            continue
        counts[str(status)] += 1


async def main(config: dict[str, object]) -> None:
    context = ssl.create_default_context(cafile=str(config["trust"]))
    ports = [int(p) for p in config["ports"]]  # type: ignore[attr-defined]
    count = int(config["connections"])  # type: ignore[call-overload]
    counts: Counter[str] = Counter()
    started = time.monotonic()
    deadline = started + float(config["seconds"])  # type: ignore[arg-type]
    await asyncio.gather(
        *(
            _spray(
                ports[i % len(ports)],
                str(config["source"]),
                context,
                deadline,
                str(config["password"]),
                str(config["prefix"]),
                counts,
            )
            for i in range(count)
        )
    )
    print(json.dumps({"counts": dict(counts), "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
