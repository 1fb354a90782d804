"""One table of malformed requests, refused alike by the sans-IO reader (tests/shared) and by
both real servers, the CA's HTTP port and the gateway (tests/gateway/test_malformed_requests.py).

Each case: an id, the raw bytes, the status of the answer. The 400s are the request-smuggling
shapes of issue 10; the others are what llhttp accepts and the core refuses itself.
"""

from __future__ import annotations

_FIELDS_101 = b"".join(b"X-%d: %d\r\n" % (n, n) for n in range(100))

MALFORMED: list[tuple[str, bytes, int]] = [
    (
        "differing-content-lengths",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
    ),
    (
        "content-length-and-transfer-encoding",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        400,
    ),
    ("content-length-1_0", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1_0\r\n\r\n", 400),
    ("content-length-plus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +10\r\n\r\n", 400),
    ("content-length-negative", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    ("version-1.1x", b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400),
    ("bare-lf-line-ends", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare-lf-in-a-field", b"GET / HTTP/1.1\r\nHost: a\nX-User-Id: victim\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
    ("nul-in-a-value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400),
    ("cr-in-a-value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400),
    ("101-fields", b"GET / HTTP/1.1\r\nHost: a\r\n" + _FIELDS_101 + b"\r\n", 400),
    ("http/1.1-without-host", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    (
        "bad-chunk-size",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1x\r\na\r\n0\r\n\r\n",
        400,
    ),
    ("space-in-target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (
        "gzip-then-chunked",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    ("version-2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("unknown-expectation", b"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417),
]
