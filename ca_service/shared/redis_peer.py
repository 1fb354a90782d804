"""The one way the CA and the gateway open Redis, and the one place that decides what a lost
connection means: which command may run again, and when Redis counts as unavailable.

A URL names one server or, through Redis Sentinel, a primary that may move to another host
(:mod:`ca_service.shared.redis_url`). With Sentinel the client asks the sentinels for the
primary whenever it connects and with every health probe, so that after a failover it
leaves the old primary within a probe interval, not when that server is finally demoted;
and security-relevant writes wait until a replica has them (``WAIT``), so that a failover
does not undo what was acknowledged.

The CA decodes responses to ``str`` (everything its adapters store is text: user IDs, hex
MACs, decimal numbers); the gateway keeps bytes. Each passes its own error for an outage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ca_service.shared.availability import Availability
from ca_service.shared.redis_url import (
    ReplicaAcks,
    SentinelUrl,
    is_sentinel_url,
    parse_sentinel_url,
)

__all__ = [
    "REDIS_DOWN",
    "NotAcknowledged",
    "RedisPeer",
    "drop_idle_connections",
    "open_client",
    "open_peer",
]

T = TypeVar("T")


class NotAcknowledged(RedisError):
    """Fewer replicas than required acknowledged a write in time (``WAIT``): the write may
    be lost in a failover, so it does not count as done."""


# What redis-py raises when Redis cannot be reached or the connection breaks, including
# BusyLoadingError while a restarted server loads its data and, with Sentinel,
# MasterNotFoundError while no sentinel names a healthy primary and a write to a primary
# since demoted to a replica (redis-py turns that READONLY answer into a ConnectionError and
# closes the connection).
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)

# Connecting to a host that does not answer, and waiting for a reply, end after this long.
CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 3.0


def _connection_options() -> dict[str, Any]:
    """What every connection gets, to a server or to a sentinel:

    - No automatic retries: redis-py's default sends any command again after a lost
      connection, the lockout script too, so a wrong password could count twice. Callers
      retry only what may run twice (:meth:`RedisPeer.call`).
    - RESP2: the pool then checks, before it hands out a pooled connection, that the server
      has not closed it (after a Redis restart every idle connection is dead); under RESP3
      redis-py skips that check for its maintenance notifications, and each dead connection
      would fail once when next used.
    - Short timeouts, so that calls fail fast while Redis is down.
    """
    return {
        "protocol": 2,
        "retry": Retry(NoBackoff(), 0),
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": COMMAND_TIMEOUT_SECONDS,
    }


def open_client(url: str, *, decode_responses: bool) -> redis.asyncio.Redis:
    """A client (with its own connection pool) for ``url``: ``redis://host:6379/0`` and the
    other forms redis-py reads, or ``redis+sentinel://host1,host2,host3/service/0``."""
    if is_sentinel_url(url):
        return _primary_client(parse_sentinel_url(url), decode_responses=decode_responses)
    return redis.asyncio.Redis.from_url(
        url, decode_responses=decode_responses, **_connection_options()
    )


class _PrimaryPool(SentinelConnectionPool):
    """redis-py's pool for a Sentinel-managed primary, which asks the sentinels for the
    primary whenever it opens a connection (and, when it moved, closes the idle ones), with
    what it lacks for a failover that leaves the old primary running:

    - a connection still open to the old primary is closed before it is handed out again
      (redis-py keeps using such a connection until a write is refused, or the old primary
      is demoted, which Sentinel does some 10 s after the switch);
    - :meth:`follow` asks the sentinels where the primary is now (the health probes call it);
    - closing the pool closes the connections to the sentinels too.
    """

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        primary = self.master_address
        if (
            connection.is_connected
            and primary is not None
            and (connection.host, connection.port) != primary  # type: ignore[attr-defined]
        ):
            await connection.disconnect()
        await super().ensure_connection(connection)

    async def follow(self) -> None:
        await self.get_master_address()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.sentinel_manager.aclose()


def _primary_client(target: SentinelUrl, *, decode_responses: bool) -> redis.asyncio.Redis:
    tls: dict[str, Any] = {}
    if target.tls:
        tls = {
            "ssl": True,
            "ssl_ca_certs": target.ssl_ca_certs,
            "ssl_certfile": target.ssl_certfile,
            "ssl_keyfile": target.ssl_keyfile,
        }
    # redis-py types Sentinel's constructor from 8.2 on, not before: called through Any so
    # that neither needs a "type: ignore" the other calls unused.
    make_sentinel: Any = Sentinel
    sentinel = make_sentinel(
        list(target.sentinels),
        sentinel_kwargs={
            **_connection_options(),
            **tls,
            "username": target.sentinel_username,
            "password": target.sentinel_password,
        },
    )
    client: redis.asyncio.Redis = sentinel.master_for(
        target.service,
        connection_pool_class=_PrimaryPool,
        db=target.db,
        username=target.username,
        password=target.password,
        decode_responses=decode_responses,
        **_connection_options(),
        **tls,
    )
    return client


async def drop_idle_connections(client: redis.asyncio.Redis) -> None:
    """After a lost connection the pool's idle connections are likely dead as well (Redis
    restarted): close them, so that the next command connects afresh. Best effort."""
    with contextlib.suppress(OSError, RedisError):
        await client.connection_pool.disconnect(inuse_connections=False)


def _demoted(error: ResponseError) -> bool:
    return "READONLY" in str(error)


class RedisPeer:
    """This service's Redis: the client, whether Redis answers (one log line per outage,
    for the health check too), and the retry rule.

    A command whose connection broke may or may not have run on the server. It is sent once
    more, on a fresh connection, only when running it twice does no harm (a read, a SET of
    the same value); any other command (the lockout and code-check scripts, GETDEL) fails
    with ``error`` (each service passes its own "Redis unavailable" error) instead of
    counting twice.

    With ``acks`` (Sentinel URLs, unless ``wait_replicas=0``), :meth:`write` makes a write
    count only once that many replicas have it.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        error: Callable[[str], Exception],
        acks: ReplicaAcks | None = None,
    ) -> None:
        self.client = client
        self.availability = Availability("Redis")
        # Whether the replicas acknowledge writes (with ``acks``), logged once per outage
        # like the rest. Not part of health: the primary answers, and only the writes that
        # wait for replicas fail.
        self.replication = Availability("Redis replication")
        self.acks = acks
        self._error = error

    async def call(self, command: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        try:
            result = await self._run(command, idempotent=idempotent)
        except NotAcknowledged as exc:
            # The primary answered, its replicas did not. It may have been replaced (a
            # failover leaves the old one running for a while, without its replicas): find
            # it again for the next call. Not retried: a write that waited in vain once
            # would most likely wait in vain again.
            self.availability.succeeded()
            self.replication.failed(exc)
            await self.follow_primary()
            raise self._error("Redis is unavailable; try again shortly") from None
        self.availability.succeeded()
        return result

    async def _run(self, command: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        try:
            return await command()
        except ResponseError as exc:
            if not _demoted(exc):
                raise
            # A script that writes, run on a primary that has just become a replica, fails
            # at its first write with READONLY inside a script error (redis-py recognises
            # READONLY only as a command's own answer): the primary moved. Nothing was
            # written; the caller answers as for an outage, and the primary is looked up.
            await drop_idle_connections(self.client)
            await self.follow_primary()
            raise self.unavailable(exc) from None
        except REDIS_DOWN as exc:
            await drop_idle_connections(self.client)
            if not idempotent:
                raise self.unavailable(exc) from None
            try:
                return await command()
            except REDIS_DOWN as again:
                raise self.unavailable(again) from None

    async def write(
        self, command: Callable[[redis.asyncio.Redis], Awaitable[T]], *, idempotent: bool
    ) -> T:
        """A write whose loss in a failover matters (a lockout count, a code try, a ticket's
        single use, a logout): ``command`` runs on the client it is given, under
        :meth:`call`'s rule. With ``acks``, on one connection followed by ``WAIT``; fewer
        replicas than required in time make it fail as Redis being unavailable (the write
        itself may stand on the primary: the caller answers as if it had not been made)."""
        acks = self.acks
        if acks is None:
            return await self.call(lambda: command(self.client), idempotent=idempotent)

        async def acknowledged() -> T:
            async with self.client.client() as connection:  # one connection: WAIT needs it
                result = await command(connection)
                count = int(await connection.wait(acks.replicas, acks.timeout_ms))
            if count < acks.replicas:
                raise NotAcknowledged(
                    f"{count} of {acks.replicas} replicas acknowledged a write "
                    f"within {acks.timeout_ms} ms"
                )
            self.replication.succeeded()
            return result

        return await self.call(acknowledged, idempotent=idempotent)

    def unavailable(self, error: BaseException) -> Exception:
        self.availability.failed(error)
        return self._error("Redis is unavailable; try again shortly")

    async def follow_primary(self) -> None:
        """With Sentinel: asks the sentinels where the primary is; when it moved, the
        connections to the old one are closed (idle ones now, busy ones when next handed
        out). Best effort: while no sentinel answers, the connections stay as they are."""
        pool = self.client.connection_pool
        if isinstance(pool, _PrimaryPool):
            with contextlib.suppress(OSError, RedisError):
                await pool.follow()

    async def ping(self) -> None:
        """The health probe: follows the primary, then PINGs it."""
        await self.follow_primary()
        await self.call(self.client.ping, idempotent=True)

    async def aclose(self) -> None:
        await self.client.aclose()


def open_peer(
    url: str,
    *,
    decode_responses: bool,
    error: Callable[[str], Exception],
) -> RedisPeer:
    """The peer for ``url``, with the replica acknowledgements a Sentinel URL asks for."""
    acks = parse_sentinel_url(url).acks if is_sentinel_url(url) else None
    return RedisPeer(open_client(url, decode_responses=decode_responses), error=error, acks=acks)
