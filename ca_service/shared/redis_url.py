"""Which Redis a URL names: one server (``redis://``, ``rediss://``, ``unix://``, read by
redis-py itself) or a primary found through Redis Sentinel::

    redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB][?OPTIONS]
    rediss+sentinel://...    the same over TLS, to the sentinels and to the servers

HOST:PORT are the sentinels (port 26379 unless given; IPv6 in brackets), SERVICE the name
the sentinels monitor the primary under, DB the database number (0 unless given). USER and
PASSWORD (percent-encoded) authenticate at the primary and replicas. OPTIONS:

- ``sentinel_username``, ``sentinel_password``: authenticate at the sentinels (their own
  ``requirepass``/ACL); none unless given.
- ``wait_replicas`` (default 1): how many replicas must have a security-relevant write
  (lockout counts, code tries, a ticket's use, a logout) before it counts as done
  (``WAIT``); 0: none.
- ``wait_timeout_ms`` (default 500, at most 2000): how long to wait for them; a write
  they did not acknowledge by then fails as "Redis unavailable".
- ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` (``rediss+sentinel`` only): the CA
  certificates (PEM) to verify the servers with (default: the system's), and the client
  certificate and key to present. Certificates are always verified, host names included.

Pure: no I/O. Error messages never repeat a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "DEFAULT_SENTINEL_PORT",
    "ReplicaAcks",
    "SentinelUrl",
    "check_redis_url",
    "is_sentinel_url",
    "parse_sentinel_url",
]

DEFAULT_SENTINEL_PORT = 26379
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme: TLS
PLAIN_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_WAIT_REPLICAS = 1
DEFAULT_WAIT_TIMEOUT_MS = 500
# Below the client's 3-second reply timeout, so that WAIT's own answer is awaited.
MAX_WAIT_TIMEOUT_MS = 2000
_TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_OPTIONS = ("sentinel_username", "sentinel_password", "wait_replicas", "wait_timeout_ms")


@dataclass(frozen=True, slots=True)
class ReplicaAcks:
    """A write counts as done only once this many replicas acknowledged it (``WAIT``)."""

    replicas: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    tls: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    acks: ReplicaAcks | None = ReplicaAcks(DEFAULT_WAIT_REPLICAS, DEFAULT_WAIT_TIMEOUT_MS)


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def check_redis_url(url: str) -> str:
    """``url`` when it names a Redis this service can use; ValueError saying why not (for
    the settings, so that a wrong URL stops the service at start)."""
    scheme = url.partition("://")[0].lower()
    if is_sentinel_url(url):
        parse_sentinel_url(url)
    elif "://" not in url or scheme not in PLAIN_SCHEMES:
        schemes = ", ".join(f"{s}://" for s in (*PLAIN_SCHEMES, *SENTINEL_SCHEMES))
        raise ValueError(f"a Redis URL starts with one of {schemes}")
    return url


def parse_sentinel_url(url: str) -> SentinelUrl:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SENTINEL_SCHEMES:
        raise ValueError("not a redis+sentinel:// or rediss+sentinel:// URL")
    if parts.fragment:
        raise ValueError("a Sentinel URL has no #fragment")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_sentinel(host) for host in hosts.split(","))
    path = [unquote(p) for p in parts.path.split("/")[1:]]
    if not path or not path[0]:
        raise ValueError("name the Sentinel service after the hosts: .../SERVICE[/DB]")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("the path is /SERVICE or /SERVICE/DB, DB a database number")
    options = _options(parts.query, tls=SENTINEL_SCHEMES[scheme])
    replicas = _number(options, "wait_replicas", DEFAULT_WAIT_REPLICAS, 0, 100)
    timeout_ms = _number(
        options, "wait_timeout_ms", DEFAULT_WAIT_TIMEOUT_MS, 1, MAX_WAIT_TIMEOUT_MS
    )
    return SentinelUrl(
        sentinels=sentinels,
        service=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
        tls=SENTINEL_SCHEMES[scheme],
        ssl_ca_certs=options.get("ssl_ca_certs"),
        ssl_certfile=options.get("ssl_certfile"),
        ssl_keyfile=options.get("ssl_keyfile"),
        acks=ReplicaAcks(replicas, timeout_ms) if replicas else None,
    )


def _sentinel(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"sentinel {text!r}: an IPv6 address is written [ADDRESS]:PORT")
        port = rest[1:] if rest else ""
    else:
        host, _, port = text.partition(":")
        if ":" in port:
            raise ValueError(f"sentinel {text!r}: an IPv6 address is written [ADDRESS]:PORT")
    if not host:
        raise ValueError("each sentinel is HOST[:PORT], separated by commas")
    if not port:
        return host, DEFAULT_SENTINEL_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"sentinel {text!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def _options(query: str, *, tls: bool) -> dict[str, str]:
    known = _OPTIONS + _TLS_OPTIONS
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in known:
            raise ValueError(f"unknown option {name!r}; known: {', '.join(known)}")
        if name in _TLS_OPTIONS and not tls:
            raise ValueError(f"{name} needs TLS: rediss+sentinel://")
        if name in options:
            raise ValueError(f"option {name!r} is given twice")
        if not value:
            raise ValueError(f"option {name!r} is empty")
        options[name] = value
    return options


def _number(options: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = options.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return int(text)
