"""ca_service.shared.http's sans-IO core: bytes in, events out (no sockets)."""

from __future__ import annotations

import pytest

from ca_service.shared.http.messages import ProtocolError, chunk, encode_head
from ca_service.shared.http.parser import END, Incoming, RequestReader, ResponseReader
from tests.malformed_http import MALFORMED


@pytest.mark.parametrize(
    ("raw", "status"),
    [(raw, status) for _, raw, status in MALFORMED],
    ids=[n for n, _, _ in MALFORMED],
)
def test_the_shared_table_is_refused_with_its_status(raw: bytes, status: int) -> None:
    with pytest.raises(ProtocolError) as refused:
        RequestReader().feed(raw)
    assert refused.value.status == status


def test_a_head_keeps_names_as_sent_and_repeated_fields_in_order() -> None:
    events = RequestReader().feed(
        b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\nConnection: keep-alive, TE\r\n\r\n"
    )
    head, end = events
    assert isinstance(head, Incoming) and end is END
    assert head.first == ("GET", "/a?b=1", "HTTP/1.1")
    assert head.get("x-a") == "1" and head.connection == {"keep-alive", "te"}
    assert head.headers[1:3] == [("X-A", "1"), ("x-a", "2")]
    assert head.keep_alive and not head.has_body


@pytest.mark.parametrize(
    ("raw", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),  # HTTP/1.0 needs no Host
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
    ],
)
def test_keep_alive_follows_the_version_and_connection(raw: bytes, keep_alive: bool) -> None:
    head = RequestReader().feed(raw)[0]
    assert isinstance(head, Incoming) and head.keep_alive is keep_alive


def test_pipelined_requests_come_out_in_order() -> None:
    events = RequestReader().feed(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    shapes = [e.first[1] if isinstance(e, Incoming) else e for e in events]
    assert shapes == ["/1", END, "/2", b"abc", END, "/3", END]


def test_a_chunked_body_split_anywhere_loses_extensions_and_trailers() -> None:
    raw = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name="quoted value"\r\nhello\r\n6;x\r\n world\r\n0\r\nX-Trailer: dropped\r\n\r\n'
    )
    reader = RequestReader()
    events = []
    for i in range(len(raw)):
        events += reader.feed(raw[i : i + 1])
    head = events[0]
    assert isinstance(head, Incoming) and head.chunked and head.has_body
    assert b"".join(e for e in events if isinstance(e, bytes)) == b"hello world"
    assert events[-1] is END and ("X-Trailer", "dropped") not in head.headers


def test_a_head_trickled_in_is_limited_in_bytes() -> None:
    reader = RequestReader(max_head=1024)
    reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ")
    with pytest.raises(ProtocolError) as refused:
        for _ in range(200):
            reader.feed(b"aaaaaaaaaa")
    assert refused.value.status == 431


@pytest.mark.parametrize("pieces", [1, 3, 40], ids=["whole", "in-3-pieces", "in-40-pieces"])
def test_a_head_is_limited_in_bytes_and_fields_however_it_arrives(pieces: int) -> None:
    """Fields are counted one by one only in a piece that could take the head past its
    limit: the limits hold for a head that comes whole, in pieces, or next to another."""

    def fed(head: bytes, **limits: int) -> ProtocolError | list[object]:
        reader = RequestReader(**limits)
        step = -(-len(head) // pieces)
        try:
            events: list[object] = []
            for start in range(0, len(head), step):
                events += reader.feed(head[start : start + step])
            return events
        except ProtocolError as refused:
            return refused

    fields = b"".join(b"X-%d: %d\r\n" % (n, n) for n in range(99))
    allowed = b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"  # 100 fields
    assert isinstance(fed(allowed), list) and len(fed(allowed)) == 2
    too_many = b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n" + fields + b"\r\n"
    refused = fed(too_many)
    assert isinstance(refused, ProtocolError) and refused.status == 400
    long_value = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 2000 + b"\r\n\r\n"
    assert isinstance(fed(long_value, max_head=4096), list)
    refused = fed(long_value, max_head=1024)
    assert isinstance(refused, ProtocolError) and refused.status == 431
    long_target = b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    refused = fed(long_target, max_head=1024)
    assert isinstance(refused, ProtocolError) and refused.status == 431
    # After a small request in the same piece, the next one's head is limited all the same.
    refused = fed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + long_value, max_head=1024)
    assert isinstance(refused, ProtocolError) and refused.status == 431


def test_whole_bodies_have_a_limit_from_the_length_or_as_chunks_arrive() -> None:
    with pytest.raises(ProtocolError) as refused:
        RequestReader(max_body=10).feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
    assert refused.value.status == 413
    reader = RequestReader(max_body=10)
    reader.feed(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n"
    )
    with pytest.raises(ProtocolError) as refused:
        reader.feed(b"8\r\n12345678\r\n")
    assert refused.value.status == 413


def test_an_upgrade_request_is_served_plainly_and_ends_the_connection() -> None:
    reader = RequestReader()
    events = reader.feed(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x00"
    )
    assert isinstance(events[0], Incoming) and events[1] is END and reader.closing
    assert reader.feed(b"GET / HTTP/1.1\r\n\r\n") == []


def test_answers_to_head_and_204_end_with_their_head() -> None:
    reader = ResponseReader("HEAD")
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert isinstance(events[0], Incoming) and events[0].status == 200 and events[1:] == [END]
    assert reader.done and not reader.extra
    assert ResponseReader("GET").feed(b"HTTP/1.1 204 No Content\r\n\r\n")[1:] == [END]


def test_informational_answers_are_skipped() -> None:
    events = ResponseReader("POST").feed(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )
    assert [e.status if isinstance(e, Incoming) else e for e in events] == [201, b"ok", END]


def test_a_body_until_the_close_ends_with_the_close_and_a_cut_one_is_an_error() -> None:
    reader = ResponseReader("GET")
    head, piece = reader.feed(b"HTTP/1.1 200 OK\r\n\r\nabc")
    assert isinstance(head, Incoming) and head.until_close and not head.keep_alive
    assert piece == b"abc" and reader.feed_eof() == [END]
    cut = ResponseReader("GET")
    cut.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
    with pytest.raises(ProtocolError):
        cut.feed_eof()
    with pytest.raises(ConnectionResetError):
        ResponseReader("GET").feed_eof()


def test_bytes_after_the_answer_spoil_the_connection() -> None:
    reader = ResponseReader("GET")
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    assert reader.done and reader.extra


@pytest.mark.parametrize(
    "headers",
    [[("X-A", "b\r\nX-User-Id: victim")], [("X-A", "b\x00")], [("X A", "b")], [("", "b")]],
)
def test_nothing_that_would_split_a_field_is_written(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ProtocolError) as refused:
        encode_head("HTTP/1.1 200 OK", headers)
    assert refused.value.status == 502


def test_heads_and_chunks_are_written_as_rfc_9112_says() -> None:
    assert encode_head("GET / HTTP/1.1", [("Host", "x"), ("X-A", "a\tb")]) == (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\tb\r\n\r\n"
    )
    assert chunk(b"hello") == b"5\r\nhello\r\n" and chunk(b"") == b""


def test_a_response_reader_is_used_again_only_between_two_messages() -> None:
    reader = ResponseReader("GET")
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    again = reader.next("GET")
    assert again is reader
    assert again.feed(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")[1:] == [END]
    head_reader = again.next("HEAD")
    head_reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    # llhttp still waits for the five bytes a HEAD answer never has: a fresh parser next.
    fresh = head_reader.next("GET")
    assert fresh is not head_reader
    events = fresh.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    assert events[1:] == [b"hi", END]


def test_a_reader_serves_another_connection_only_from_between_two_requests() -> None:
    reader = RequestReader()
    reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reader.between_messages
    reader.feed(b"GET / HTTP/1.1\r\nHo")
    assert not reader.between_messages  # in the middle of a head
    spoiled = RequestReader()
    with pytest.raises(ProtocolError):
        spoiled.feed(b"GET / HTTP/1.1\nHost: x\n\n")
    assert not spoiled.between_messages


def test_a_reader_after_connection_close_can_serve_the_next_connection() -> None:
    reader = RequestReader()
    reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reader.between_messages
    head = reader.feed(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")[0]
    assert isinstance(head, Incoming) and head.first[1] == "/next"
