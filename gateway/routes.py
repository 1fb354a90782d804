"""Which upstream serves a path, and how its callers are identified (README, "Gateway
routes"): path prefixes mapped to an upstream and an access mode, the longest prefix winning.

- ``user``: this CA's users, client certificate and (``GATEWAY_REQUIRE_LOGIN``) a login
  session; the identity headers go upstream. The default route ``/`` is ``GATEWAY_UPSTREAM``
  in this mode.
- ``card``: an identity card's certificate (``GATEWAY_CARD_TRUST``); the holder's attributes
  go upstream. This CA's certificates are refused.
- ``public``: no identity; no identity header goes upstream.

The setting: entries ``PREFIX MODE [UPSTREAM]`` separated by commas or new lines, e.g.
``/procedures/ public http://127.0.0.1:8090, /procedures/card/ card http://127.0.0.1:8090``;
without an upstream, ``GATEWAY_UPSTREAM``. The path goes upstream unchanged. Pure: parsing
and matching only.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Mode", "Route", "RouteTable", "parse_routes"]


class Mode(enum.Enum):
    USER = "user"
    CARD = "card"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    mode: Mode
    upstream: str  # http://HOST:PORT


def _check_upstream(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"an upstream is an http://HOST:PORT URL, not {url!r}")
    return url


def parse_routes(text: str, default_upstream: str) -> tuple[Route, ...]:
    """The routes of the setting, plus ``/`` → ``default_upstream`` (``user``) unless the
    setting names ``/`` itself. Raises ``ValueError`` saying which entry is wrong."""
    routes: dict[str, Route] = {}
    for entry in re.split(r"[,\n]", text):
        words = entry.split()
        if not words:
            continue
        if len(words) not in (2, 3):
            raise ValueError(f"a route is 'PREFIX MODE [UPSTREAM]', not {entry.strip()!r}")
        prefix, mode_name = words[0], words[1]
        if not prefix.startswith("/") or prefix.startswith("/-/"):
            raise ValueError(f"a route's prefix starts with '/' (not '/-/'): {prefix!r}")
        try:
            mode = Mode(mode_name)
        except ValueError:
            modes = ", ".join(m.value for m in Mode)
            raise ValueError(f"a route's mode is one of {modes}, not {mode_name!r}") from None
        upstream = _check_upstream(words[2] if len(words) == 3 else default_upstream)
        if prefix in routes:
            raise ValueError(f"the prefix {prefix!r} is routed twice")
        routes[prefix] = Route(prefix, mode, upstream)
    routes.setdefault("/", Route("/", Mode.USER, _check_upstream(default_upstream)))
    return tuple(routes.values())


class RouteTable:
    """Finds a path's route: the longest matching prefix (``/`` matches every path)."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        self._longest_first = sorted(routes, key=lambda route: len(route.prefix), reverse=True)
        self._root = next(route for route in routes if route.prefix == "/")
        self._simple = len(routes) == 1  # only "/": no search per request

    def match(self, path: str) -> Route:
        if self._simple:
            return self._root
        for route in self._longest_first:
            if path.startswith(route.prefix):
                return route
        return self._root

    @property
    def modes(self) -> frozenset[Mode]:
        return frozenset(route.mode for route in self.routes)
