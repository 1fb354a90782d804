#!/usr/bin/env python3
"""Why the HTTP core is built on httptools (llhttp) and not h11: time per request, and which of
the malformed requests of tests/malformed_http.py each parser refuses by itself.

* httptools alone: one request head fed to ``HttpRequestParser``, callbacks collecting the
  fields (what a parser costs at the least);
* the core: ``ca_service.shared.http.parser.RequestReader.feed`` (httptools plus this
  project's checks and the head object the server hands on);
* h11: ``receive_data`` + ``next_event`` twice (request, end of message), a response and its
  end sent back, ``start_next_cycle`` (h11 cannot parse without taking part in the exchange).

h11 is not a dependency of the project: ``.venv/bin/pip install h11`` to include it.

    .venv/bin/python bench/http_parsers.py [--requests 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httptools

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ca_service.shared.http.messages import ProtocolError
from ca_service.shared.http.parser import RequestReader
from tests.malformed_http import MALFORMED

REQUEST = (
    b"GET /ocsp/MFYwVKADAgEAME0wSzAJBgUrDgMCGgUABBR HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"User-Agent: curl/7.88\r\nAccept: */*\r\nCookie: a=b; c=d\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
)


class _Collect:
    __slots__ = ("done", "headers", "url")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.url = b""
        self.done = 0

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        self.done += 1


def httptools_alone(count: int) -> float:
    collect = _Collect()
    parser = httptools.HttpRequestParser(collect)
    started = time.perf_counter()
    for _ in range(count):
        collect.headers = []
        parser.feed_data(REQUEST)
    return (time.perf_counter() - started) / count * 1e6


def core(count: int) -> float:
    reader = RequestReader()
    started = time.perf_counter()
    for _ in range(count):
        reader.feed(REQUEST)
    return (time.perf_counter() - started) / count * 1e6


def h11_exchange(count: int) -> float:
    import h11

    connection = h11.Connection(h11.SERVER)
    started = time.perf_counter()
    for _ in range(count):
        connection.receive_data(REQUEST)
        connection.next_event()
        connection.next_event()
        connection.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
        connection.send(h11.EndOfMessage())
        connection.start_next_cycle()
    return (time.perf_counter() - started) / count * 1e6


def refuses_httptools(raw: bytes) -> bool:
    try:
        httptools.HttpRequestParser(_Collect()).feed_data(raw)
    except httptools.HttpParserError:
        return True
    return False


def refuses_h11(raw: bytes) -> bool:
    import h11

    connection = h11.Connection(h11.SERVER)
    try:
        connection.receive_data(raw)
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA or isinstance(event, h11.EndOfMessage):
                return False
    except h11.RemoteProtocolError:
        return True


def refuses_core(raw: bytes) -> str:
    try:
        RequestReader().feed(raw)
    except ProtocolError as exc:
        return str(exc.status)
    return "accepted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        import h11  # noqa: F401

        have_h11 = True
    except ImportError:
        have_h11 = False
    timed: list[tuple[str, Callable[[int], float]]] = [
        ("httptools alone (parse)", httptools_alone),
        ("the core's RequestReader (parse + checks + head)", core),
    ]
    if have_h11:
        timed.append(("h11 (parse + answer + next cycle)", h11_exchange))
    print(f"µs per request, median of {args.rounds} rounds of {args.requests:,}:")
    for name, function in timed:
        values = [function(args.requests) for _ in range(args.rounds)]
        print(f"  {name:50} {statistics.median(values):7.2f}  {[round(v, 2) for v in values]}")
    print("\nmalformed requests (tests/malformed_http.py): refused by")
    print(f"  {'case':38} {'httptools':>10} {'h11':>6} {'the core':>9}")
    for name, raw, status in MALFORMED:
        ours = refuses_core(raw)
        h11_says = ("yes" if refuses_h11(raw) else "no") if have_h11 else "-"
        print(
            f"  {name:38} {'yes' if refuses_httptools(raw) else 'no':>10} {h11_says:>6} "
            f"{ours:>9}{'' if ours == str(status) else '  (table says ' + str(status) + ')'}"
        )


if __name__ == "__main__":
    main()
