"""Routing of the CA's relying-party HTTP port (CRLs, CA certificates, OCSP) on the project's
one HTTP core (:mod:`ca_service.shared.http`): a handler per path prefix returning a whole
response, plain-text errors, and the core set up for small whole bodies.

A framework would cost more per request than the OCSP responder's work itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ca_service.shared.http.server import HttpServer, Request, Response
from ca_service.shared.net.guard import ConnectionGuard

__all__ = ["MAX_BODY_BYTES", "MAX_HEAD_BYTES", "Handler", "Router", "plain", "relying_party_server"]

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
# For a connection refused at accept because every admitted one is busy with a request.
_REFUSED_BODY = b"too many connections; retry\n"
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s"
    % (len(_REFUSED_BODY), _REFUSED_BODY)
)

Handler = Callable[[Request], "Response | Awaitable[Response]"]


def plain(status: int, text: str) -> Response:
    return Response(status, [("Content-Type", "text/plain")], text.encode() + b"\n")


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, str, Handler]] = []

    def route(self, method: str, prefix: str, handler: Handler) -> None:
        """Requests whose path equals ``prefix`` (or starts with it, when it ends in
        ``/``) go to ``handler``; longer prefixes are tried first."""
        self._routes.append((method, prefix, handler))
        self._routes.sort(key=lambda item: -len(item[1]))

    def __call__(self, request: Request) -> Response | Awaitable[Response]:
        method = request.method
        if method == "HEAD":
            method = "GET"
        path = request.path
        known_path = False
        for route_method, prefix, handler in self._routes:
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                known_path = True
                if route_method == method:
                    return handler(request)
        if known_path:
            return plain(405, "method not allowed")
        return plain(404, "not found")


def relying_party_server(router: Router, guard: ConnectionGuard) -> HttpServer:
    """The CA's HTTP server: bodies read whole (64 KiB at most) before the handler runs, and
    a 503 for a connection refused when every admitted one is busy."""
    return HttpServer(
        router,
        guard=guard,
        error_page=plain,
        max_head=MAX_HEAD_BYTES,
        max_body=MAX_BODY_BYTES,
        refusal=_REFUSED,
    )
