"""The gateway's HTTP/1.1 server is the project's one HTTP core
(:mod:`ca_service.shared.http`) with TLS inside the connection's protocol: this module names
what the gateway's handlers see of it (the request, its connection's TLS facts, the
response), and :func:`behind`, the guard its screens put before their handlers."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ca_service.shared.http.server import (
    AccessLog,
    Connection,
    Handler,
    HttpServer,
    Pending,
    Request,
    Response,
)

__all__ = [
    "AccessLog",
    "Connection",
    "Handler",
    "HttpServer",
    "Pending",
    "Request",
    "Response",
    "behind",
]

_Owner = TypeVar("_Owner")
_Incoming = TypeVar("_Incoming")
_Granted = TypeVar("_Granted")


def behind(
    guard: Callable[[_Owner, _Incoming], Awaitable[_Granted | Response]],
) -> Callable[
    [Callable[[_Owner, _Incoming, _Granted], Awaitable[Response]]],
    Callable[[_Owner, _Incoming], Awaitable[Response]],
]:
    """A handler method that runs only past ``guard``, a method of the same class that answers
    a request either with what it grants (the logged-in master user, the portal's session and
    card …), which the handler gets as its last argument, or with the page that refuses it,
    which is the answer then: the check is written once, not at the top of every handler."""

    def decorate(
        handler: Callable[[_Owner, _Incoming, _Granted], Awaitable[Response]],
    ) -> Callable[[_Owner, _Incoming], Awaitable[Response]]:
        @functools.wraps(handler)
        async def guarded(owner: _Owner, incoming: _Incoming) -> Response:
            granted = await guard(owner, incoming)
            if isinstance(granted, Response):
                return granted
            return await handler(owner, incoming, granted)

        return guarded

    return decorate
