"""The sans-IO HTTP/1.1 core: bytes in, events out, no sockets, no clock.

Parsing is llhttp's (the parser of Node.js) through ``httptools``; what llhttp lets pass and
this project does not is refused here, so that both ports refuse the same shapes:

* llhttp itself refuses differing or repeated Content-Length, Content-Length with
  Transfer-Encoding, lengths that are not plain digits (``1_0``, ``+10``, ``-1``), a bad
  version (``HTTP/1.1x``), bare LF line ends, obsolete line folding, NUL, CR or LF in a
  field value, bad chunk sizes, and Transfer-Encoding whose last coding is not chunked;
* here: a version other than 1.x (505; llhttp reads ``HTTP/2.0`` as a version), any coding
  besides chunked (``Transfer-Encoding: gzip, chunked``: 501, nothing here decodes gzip), an
  HTTP/1.1 request without exactly one Host, more than ``max_fields`` fields, a head longer
  than ``max_head`` bytes (431), an Expect other than 100-continue (417) and, where a limit is
  set, a body longer than ``max_body`` (413, at once when Content-Length says so).
  Chunk extensions (``1;name=value``, RFC 9112 §7.1.1) are valid HTTP/1.1: llhttp checks
  their syntax, they are dropped (bodies are re-framed on the way out), never passed on.

A reader yields, for each message, one :class:`Incoming` (the head with its framing), the
body in pieces (``bytes``) and :data:`END`. Errors are :class:`ProtocolError` with the status
to answer; after one the reader must not be fed again.
"""

from __future__ import annotations

from typing import Final

import httptools

from ca_service.shared.http.messages import Head, ProtocolError

__all__ = [
    "END",
    "MAX_FIELDS",
    "MAX_HEAD_BYTES",
    "Event",
    "Incoming",
    "RequestReader",
    "ResponseReader",
]

MAX_HEAD_BYTES = 32 * 1024
MAX_FIELDS = 100


class _End:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END: Final = _End()
"""The end of a message's body."""


class Incoming(Head):
    """A head as received, with what its framing says. For a request ``first`` is (method,
    target, version); for a response (version, status, reason) and ``status`` the number."""

    __slots__ = (
        "chunked",
        "connection",
        "continue_expected",
        "fields",
        "keep_alive",
        "length",
        "status",
        "until_close",
    )

    def __init__(
        self,
        first: tuple[str, str, str],
        headers: list[tuple[str, str]] | None = None,
        *,
        raw: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(first, headers, raw=raw)
        self.keep_alive = True
        # The Connection field's tokens, lower-case (hop-by-hop names among them).
        self.connection: frozenset[str] = frozenset()
        self.length: int | None = 0  # None: chunked or until the close
        self.chunked = False
        self.until_close = False
        self.continue_expected = False  # a request that awaits 100 Continue
        self.status = 0
        # Lower-case name → the first value, as received (None: look through ``headers``).
        self.fields: dict[bytes, bytes] | None = None

    def get(self, name: str) -> str | None:
        fields = self.fields
        if fields is None:
            return super().get(name)
        value = fields.get(name.lower().encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    @property
    def has_body(self) -> bool:
        return self.chunked or self.until_close or bool(self.length)


Event = Incoming | bytes | _End


_NO_TOKENS: frozenset[str] = frozenset()
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
_VERSIONS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_COMMON_TOKENS = {
    b"close": frozenset({"close"}),
    b"keep-alive": frozenset({"keep-alive"}),
    b"Keep-Alive": frozenset({"keep-alive"}),
}


def _connection_tokens(fields: dict[bytes, bytes]) -> frozenset[str]:
    value = fields.get(b"connection")
    if not value:
        return _NO_TOKENS
    common = _COMMON_TOKENS.get(value)
    if common is not None:
        return common
    tokens = value.decode("latin-1").split(",")
    return frozenset(token.strip().lower() for token in tokens) - {""}


class _Reader:
    __slots__ = (
        "_events",
        "_fields",
        "_first",
        "_head_bytes",
        "_in_head",
        "_in_message",
        "_max_fields",
        "_max_head",
        "_parser",
        "_raw",
        "_span",
        "_tight",
        "_trailers",
    )

    _parser: httptools.HttpRequestParser | httptools.HttpResponseParser
    # The status for a message llhttp refuses: a request is the client's fault (400), an
    # answer the upstream's (502: the gateway says so to its client, not "bad request").
    _malformed = 400

    def __init__(self, max_head: int, max_fields: int) -> None:
        self._max_head = max_head
        self._max_fields = max_fields
        self._events: list[Event] = []
        self._raw: list[tuple[bytes, bytes]] = []
        # Lower-case name → its first value (Connection: all its values, joined).
        self._fields: dict[bytes, bytes] = {}
        self._span = b""  # the URL or status reason, which may come in pieces
        self._head_bytes = 0
        self._in_head = False
        self._in_message = False
        self._trailers = False
        self._tight = False
        self._first: tuple[str, str, str] = ("", "", "")

    # httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = self._in_message = True
        self._trailers = False
        self._head_bytes = 0
        self._raw = []
        self._fields = {}
        self._span = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._trailers:
            return  # trailer fields are read and dropped
        if self._tight:  # this piece could take the head past its limit: counted field by field
            self._head_bytes += len(name) + len(value) + 4
            if self._head_bytes > self._max_head:
                raise ProtocolError("message head too large", 431)
            if len(self._raw) >= self._max_fields:
                raise ProtocolError(f"more than {self._max_fields} header fields")
        self._raw.append((name, value))
        lower = name.lower()
        fields = self._fields
        if lower not in fields:
            fields[lower] = value
        elif lower == b"host":
            raise ProtocolError("more than one Host field")
        elif lower == b"connection":
            fields[lower] += b", " + value

    def on_body(self, body: bytes) -> None:
        self._events.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._events.append(END)

    # feeding ------------------------------------------------------------------------------

    def _feed(self, data: bytes) -> list[Event]:
        size = len(data)
        # Most pieces cannot take a head past its limit, whatever they hold: their fields are
        # then not counted one by one (the number of fields is checked once, at the end).
        self._tight = self._head_bytes + size > self._max_head
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._in_message = True  # the parser is spoiled: never used again
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                raise cause from None
            raise
        except httptools.HttpParserUpgrade:
            # An Upgrade or CONNECT request: served as a plain request (Upgrade is hop-by-hop,
            # never forwarded), after which the connection closes.
            self._upgraded()
        except httptools.HttpParserError as exc:
            self._in_message = True
            raise ProtocolError(str(exc) or "malformed message", self._malformed) from None
        if self._in_head:
            self._head_bytes += size
            if self._head_bytes > self._max_head:
                self._in_message = True
                raise ProtocolError("message head too large", 431)
        events, self._events = self._events, []
        return events

    def _upgraded(self) -> None:
        raise ProtocolError("protocol upgrades are not supported")

    def close(self) -> None:
        """Ends the reader: the parser holds the reader's callbacks and the reader the parser,
        a cycle that only the garbage collector would free otherwise (once per connection,
        that made collections frequent and long under a load of short connections)."""
        self._events = []
        self._raw = []
        self._fields = {}
        self._parser = _CLOSED_REQUESTS

    def _complete_head(self) -> tuple[Incoming, dict[bytes, bytes]]:
        self._in_head = False
        self._trailers = True
        if len(self._raw) > self._max_fields:
            raise ProtocolError(f"more than {self._max_fields} header fields")
        fields = self._fields
        message = Incoming(self._first, raw=self._raw)
        message.fields = fields
        # Content-Length or chunked, from fields llhttp has already checked.
        coding = fields.get(b"transfer-encoding")
        if coding is not None:
            if [token.strip().lower() for token in coding.split(b",")] != [b"chunked"]:
                raise ProtocolError("only the chunked transfer coding is supported", 501)
            message.length, message.chunked = None, True
        else:
            length = fields.get(b"content-length")
            if length is not None:
                message.length = int(length)
        return message, fields


class _Nothing:
    """The callbacks of a closed reader's stand-in parser."""


_CLOSED_REQUESTS = httptools.HttpRequestParser(_Nothing())


class RequestReader(_Reader):
    """Requests received on a server connection, one after the other (pipelining included).

    ``max_body``: the longest body accepted (413 past it), or None for no limit (the body is
    streamed to whoever reads it)."""

    __slots__ = ("_max_body", "_received", "_requests", "closing")

    def __init__(
        self,
        *,
        max_head: int = MAX_HEAD_BYTES,
        max_fields: int = MAX_FIELDS,
        max_body: int | None = None,
    ) -> None:
        super().__init__(max_head, max_fields)
        self._max_body = max_body
        self._received = 0
        # The connection must close after the message received last (an upgrade was asked).
        self.closing = False
        self._parser = self._requests = httptools.HttpRequestParser(self)
        # After a request with Connection: close, llhttp refuses any further byte; the
        # server never serves one (it closes the connection after that answer), and this
        # lets the parser serve the next connection instead of a new one being made.
        self._requests.set_dangerous_leniencies(lenient_keep_alive=True)

    def feed(self, data: bytes) -> list[Event]:
        if self.closing:
            return []  # what follows an upgrade request is not HTTP/1.1
        return self._feed(data)

    def close(self) -> None:
        super().close()
        self.closing = True
        self._requests = _CLOSED_REQUESTS

    @property
    def between_messages(self) -> bool:
        """Whether the parser waits for the start of a request (it can serve another
        connection)."""
        return not (self._in_message or self.closing)

    def _upgraded(self) -> None:
        if self._in_message:
            super()._upgraded()
        self.closing = True

    def on_url(self, url: bytes) -> None:
        self._span += url
        if self._tight:
            self._head_bytes += len(url)
            if self._head_bytes > self._max_head:
                raise ProtocolError("request target too long", 431)

    def on_body(self, body: bytes) -> None:
        if self._max_body is not None:
            self._received += len(body)
            if self._received > self._max_body:
                raise ProtocolError(f"bodies are limited to {self._max_body} bytes", 413)
        self._events.append(body)

    def on_headers_complete(self) -> None:
        parser = self._requests
        version = parser.get_http_version()
        if version[:2] != "1.":
            raise ProtocolError("only HTTP/1.1 is served", 505)
        method = parser.get_method()
        self._first = (
            _METHODS.get(method) or method.decode("ascii"),
            self._span.decode("latin-1"),
            _VERSIONS.get(version) or "HTTP/" + version,
        )
        message, fields = self._complete_head()
        if version == "1.1" and b"host" not in fields:
            raise ProtocolError("an HTTP/1.1 request needs a Host field")
        tokens = message.connection = _connection_tokens(fields)
        message.keep_alive = "close" not in tokens if version == "1.1" else "keep-alive" in tokens
        if message.length and self._max_body is not None and message.length > self._max_body:
            raise ProtocolError(f"bodies are limited to {self._max_body} bytes", 413)
        self._received = 0
        expect = fields.get(b"expect")
        if expect is not None:
            if expect.lower() != b"100-continue":
                raise ProtocolError("only 100-continue is supported", 417)
            message.continue_expected = version == "1.1" and message.has_body
        self._events.append(message)


_CLOSED_RESPONSES = httptools.HttpResponseParser(_Nothing())


class ResponseReader(_Reader):
    """The response to one request sent on a client connection (a fresh reader per exchange):
    1xx heads are skipped, a response to HEAD and a 204 or 304 end with their head, and a
    response without length ends when the connection does (:meth:`feed_eof`)."""

    __slots__ = ("_bodiless", "_head", "_informational", "_responses", "done", "extra")

    _malformed = 502

    def __init__(
        self, method: str, *, max_head: int = MAX_HEAD_BYTES, max_fields: int = MAX_FIELDS
    ) -> None:
        super().__init__(max_head, max_fields)
        self._bodiless = method == "HEAD"
        self._head: Incoming | None = None
        self._informational = False
        self.done = False  # END was given
        self.extra = False  # bytes came after the response: the connection is spoiled
        self._parser = self._responses = httptools.HttpResponseParser(self)

    def feed(self, data: bytes) -> list[Event]:
        if self.done:
            self.extra = self.extra or bool(data)
            return []
        return self._feed(data)

    def close(self) -> None:
        super().close()
        self.done = self.extra = True  # never used again
        self._parser = self._responses = _CLOSED_RESPONSES

    def next(self, method: str) -> ResponseReader:
        """A reader for the next response on the same connection: this one again when its
        parser stands between two messages (saves making a parser per exchange)."""
        if not self.done or self._in_message or self.extra:
            return ResponseReader(method, max_head=self._max_head, max_fields=self._max_fields)
        self._bodiless = method == "HEAD"
        self._head = None
        self._informational = False
        self.done = False
        self._events = []
        return self

    def feed_eof(self) -> list[Event]:
        """The server closed the connection: the end of a body delimited by the close."""
        head = self._head
        if self.done:
            return []
        if head is not None and head.until_close:
            self.done = True
            return [END]
        if head is None and not self._in_message:
            raise ConnectionResetError("the server closed the connection without answering")
        raise ProtocolError("the server closed the connection in the middle of its answer", 502)

    def on_status(self, status: bytes) -> None:
        self._span += status
        if self._tight:
            self._head_bytes += len(status)

    def on_headers_complete(self) -> None:
        parser = self._responses
        version = parser.get_http_version()
        status = parser.get_status_code()
        if version[:2] != "1.":
            raise ProtocolError("the answer is not HTTP/1.x", 502)
        if 100 <= status < 200:
            self._informational = True  # 100 Continue and the like: not the answer
            self._in_head = False
            return
        self._informational = False
        self._first = ("HTTP/" + version, str(status), self._span.decode("latin-1"))
        message, fields = self._complete_head()
        message.status = status
        bodiless = self._bodiless or status in (204, 304)
        if bodiless:
            message.length, message.chunked = 0, False
        elif not message.chunked and b"content-length" not in fields:
            message.length, message.until_close = None, True
        tokens = message.connection = _connection_tokens(fields)
        message.keep_alive = version == "1.1" and "close" not in tokens and not message.until_close
        self._head = message
        self._events.append(message)
        if bodiless:
            # llhttp would wait for the body a Content-Length announces; there is none.
            self._events.append(END)
            self.done = True

    def on_body(self, body: bytes) -> None:
        if not self.done:
            self._events.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._informational:
            self._informational = False
            return
        if not self.done:
            self.done = True
            self._events.append(END)
