"""gateway.http1: message heads and body framing (RFC 9112), fed from a real StreamReader."""

from __future__ import annotations

import asyncio

import pytest

from gateway.http1 import (
    Framing,
    Head,
    ProtocolError,
    body_chunks,
    check_request_line,
    encode_head,
    framing,
    read_head,
)


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def _body(data: bytes, frame: Framing) -> bytes:
    return b"".join([piece async for piece in body_chunks(_reader(data), frame)])


async def test_head_is_parsed_with_original_case_and_repeated_fields() -> None:
    head = await read_head(
        _reader(
            b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n"
            b"Connection: keep-alive, TE\r\n\r\n"
        )
    )
    assert head is not None
    assert head.first == ("GET", "/a?b=1", "HTTP/1.1")
    assert head.get("x-a") == "1" and head.tokens("connection") == {"keep-alive", "te"}
    assert ("X-A", "1") in head.headers and ("x-a", "2") in head.headers


async def test_clean_close_before_a_head_is_not_an_error() -> None:
    assert await read_head(_reader(b"")) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",  # whitespace before the colon
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",  # obsolete line folding
        b"GET /\r\n\r\n",  # no version
        b"GET / HTTP/1.1\r\nnocolon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n",  # closed in the middle
        b"GET / HTTP/1.1\r\nX-A: b\nX-User-Id: victim\r\n\r\n",  # bare LF in a value
        b"GET / HTTP/1.1\r\nX-A: b\x00c\r\n\r\n",  # NUL
        b"GET / HTTP/1.1\r\nX(A): b\r\n\r\n",  # not a token
        b"GET /a\nb HTTP/1.1\r\n\r\n",  # control character in the request line
    ],
)
async def test_malformed_heads_are_refused(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        await read_head(_reader(raw))


def _head(*headers: tuple[str, str]) -> Head:
    return Head(("POST", "/", "HTTP/1.1"), list(headers))


def test_request_framing() -> None:
    assert framing(_head(), request=True).empty
    assert framing(_head(("Content-Length", "5")), request=True) == Framing(5)
    assert framing(_head(("Transfer-Encoding", "chunked")), request=True).chunked
    # Smuggling shapes are refused (RFC 9112 §6.1, §6.3).
    for bad in (
        _head(("Transfer-Encoding", "chunked"), ("Content-Length", "5")),
        _head(("Content-Length", "5"), ("Content-Length", "6")),
        _head(("Content-Length", "-1")),
        _head(("Content-Length", "5, 5x")),
        _head(("Transfer-Encoding", "gzip, chunked")),
        _head(("Content-Length", "²")),  # a digit to str.isdigit, not to HTTP
    ):
        with pytest.raises(ProtocolError):
            framing(bad, request=True)


def test_response_framing() -> None:
    head = Head(("HTTP/1.1", "200", "OK"), [])
    assert framing(head, request=False).until_close
    assert framing(head, request=False, method="HEAD").empty
    assert framing(
        Head(("HTTP/1.1", "304", "x"), [("Content-Length", "9")]), request=False, status=304
    ).empty


async def test_bodies_are_read_in_pieces() -> None:
    assert await _body(b"helloEXTRA", Framing(5)) == b"hello"
    chunked = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    assert await _body(chunked, Framing(None, chunked=True)) == b"hello world"
    assert await _body(b"until the end", Framing(None, until_close=True)) == b"until the end"
    big = b"x" * (200 * 1024)
    pieces = [p async for p in body_chunks(_reader(big), Framing(len(big)))]
    assert b"".join(pieces) == big and max(map(len, pieces)) <= 64 * 1024


@pytest.mark.parametrize(
    ("data", "frame"),
    [
        (b"hel", Framing(5)),
        (b"zz\r\nhello\r\n0\r\n\r\n", Framing(None, chunked=True)),
        (b"5\r\nhelloXX0\r\n\r\n", Framing(None, chunked=True)),
        (b"5\r\nhel", Framing(None, chunked=True)),
        (b"-1\r\n" + b"x" * 70000, Framing(None, chunked=True)),  # negative size
        (b"0x5\r\nhello\r\n0\r\n\r\n", Framing(None, chunked=True)),
        (b"+5\r\nhello\r\n0\r\n\r\n", Framing(None, chunked=True)),
        (b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n", Framing(None, chunked=True)),
    ],
)
async def test_truncated_or_malformed_bodies_raise(data: bytes, frame: Framing) -> None:
    with pytest.raises(ProtocolError):
        await _body(data, frame)


async def test_a_stalled_body_is_given_up_on() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"hel")  # and then nothing, without closing
    with pytest.raises(ProtocolError) as caught:
        async for _ in body_chunks(reader, Framing(5), idle_timeout=0.2):
            pass
    assert caught.value.status == 408


def test_check_request_line() -> None:
    check_request_line(Head(("GET", "/a?b=c", "HTTP/1.1"), []))
    for first in (("G ET", "/", "HTTP/1.1"), ("GET", "", "HTTP/1.1"), ("GET", "/\x7f", "HTTP/1.1")):
        with pytest.raises(ProtocolError):
            check_request_line(Head(first, []))


def test_nothing_that_would_split_is_ever_written() -> None:
    assert encode_head("GET / HTTP/1.1", [("X-A", "b")]) == b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"
    for headers in ([("X-A", "b\r\nX-B: c")], [("X A", "b")], [("X-A", "b\nc")]):
        with pytest.raises(ProtocolError):
            encode_head("GET / HTTP/1.1", headers)
