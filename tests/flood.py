"""Slow and aborted connections against a real server, from a process of their own.

    python -m tests.flood HOST PORT MODE COUNT [--interval S] [--rate N] [--hold S]

Modes:
  http           plain TCP; a request head sent one byte every ``interval`` seconds
  tls-handshake  plain TCP; a TLS ClientHello sent one byte every ``interval`` seconds
  tls-head       a whole TLS handshake, then a request head one byte every ``interval``
  tls-idle       a whole TLS handshake, then nothing
  tls-abort      a ClientHello; ``interval`` seconds after the server answered, a reset

Connections are opened at ``rate`` per second. Each one is watched until the server closes
it (or ``hold`` seconds pass); at the end one JSON line on stdout lists every connection: when
it connected, how long it lived until the server closed it and how many bytes it had sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HEAD = b"GET /-/health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\n\r\n"


@dataclass
class Outcome:
    opened: float = -1.0  # seconds after the flood started; -1: never connected
    # Seconds from the connect call (the server's deadline counts from its accept, TLS
    # handshake included) to the server's close; -1: still open.
    lifetime: float = -1.0
    sent: int = 0
    error: str = ""


def client_hello() -> bytes:
    context = _client_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _closed(reader: asyncio.StreamReader) -> None:
    """Returns when the server closes (EOF or reset); whatever it sends is read away."""
    try:
        while await reader.read(65536):
            pass
    except (ConnectionError, ssl.SSLError, OSError):
        pass


async def _trickle(
    writer: asyncio.StreamWriter, data: bytes, interval: float, out: Outcome
) -> None:
    for index in range(len(data)):
        writer.write(data[index : index + 1])
        out.sent += 1
        await asyncio.sleep(interval)
    await asyncio.sleep(3600)


async def one(args: argparse.Namespace, started: float, out: Outcome, hello: bytes) -> None:
    tls = args.mode in ("tls-head", "tls-idle")
    connecting = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(
            args.host,
            args.port,
            **({"ssl": _client_context(), "server_hostname": "localhost"} if tls else {}),
        )
    except (OSError, ssl.SSLError) as exc:
        out.error = type(exc).__name__
        return
    out.opened = time.monotonic() - started
    if args.mode == "tls-abort":
        writer.write(hello)
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(reader.read(1), 5)
            await asyncio.sleep(args.interval)  # the server waits for our Finished
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        out.lifetime = time.monotonic() - connecting
        return
    data = {"http": HEAD, "tls-handshake": hello, "tls-head": HEAD, "tls-idle": b""}[args.mode]
    sending = asyncio.ensure_future(_trickle(writer, data, args.interval, out))
    try:
        await asyncio.wait_for(_closed(reader), args.hold)
        out.lifetime = time.monotonic() - connecting
    except TimeoutError:
        pass
    finally:
        sending.cancel()
        writer.transport.abort()


async def flood(args: argparse.Namespace) -> list[Outcome]:
    hello = client_hello()
    outcomes = [Outcome() for _ in range(args.count)]
    started = time.monotonic()
    tasks = []
    for index, out in enumerate(outcomes):
        due = started + index / args.rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(args, started, out, hello)))
    await asyncio.gather(*tasks)
    return outcomes


# -- for the tests: the flood as a subprocess, and a probe timed alongside it ---------------


@dataclass
class Flood:
    """A flood running as a subprocess; its outcomes arrive in a file of their own (a pipe
    could interleave them with anything else the process or a library prints)."""

    process: subprocess.Popen[bytes]
    results: Path


def start_flood(
    host: str, port: int, mode: str, count: int, *, interval: float, rate: float, hold: float
) -> Flood:
    handle, name = tempfile.mkstemp(prefix="flood-", suffix=".json")
    os.close(handle)
    results = Path(name)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.flood",
            host,
            str(port),
            mode,
            str(count),
            "--interval",
            str(interval),
            "--rate",
            str(rate),
            "--hold",
            str(hold),
            "--out",
            str(results),
        ],
    )
    return Flood(process, results)


def outcomes(flood: Flood, timeout: float) -> list[Outcome]:
    try:
        flood.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        flood.process.kill()
        flood.process.wait()
        raise
    finally:
        text = flood.results.read_text()
        flood.results.unlink(missing_ok=True)
    assert flood.process.returncode == 0, f"flood failed ({flood.process.returncode})"
    return [Outcome(**item) for item in json.loads(text)]


@dataclass
class Probe:
    """Calls ``check`` every ``period`` seconds in a thread and times each call; a call that
    raises is counted as a failure (with its error)."""

    check: Callable[[], None]
    period: float = 0.05
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Probe:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self.check()
                self.seconds.append(time.perf_counter() - started)
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(max(0.0, self.period - (time.perf_counter() - started)))

    def p99(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument(
        "mode", choices=["http", "tls-handshake", "tls-head", "tls-idle", "tls-abort"]
    )
    parser.add_argument("count", type=int)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--hold", type=float, default=60.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    outcomes = asyncio.run(flood(args))
    args.out.write_text(json.dumps([asdict(o) for o in outcomes]))


if __name__ == "__main__":
    main()
