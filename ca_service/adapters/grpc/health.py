"""``grpc.health.v1`` kept in step with the peers the CA needs: SERVING while the SQL store
and Redis answer, NOT_SERVING while one of them does not.

Calls report every outcome to the peer's :class:`~ca_service.shared.availability.Availability`;
a probe every ``interval`` (a trivial query, a PING) notices an outage when no call comes,
and its end. Each change of state is logged once, by the availability.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from grpc_health.v1 import health_pb2

from ca_service.adapters.grpc.server import HealthServicer
from ca_service.errors import RedisUnavailable, StoreError
from ca_service.shared.availability import Availability

__all__ = ["HealthMonitor", "Peer"]

log = logging.getLogger(__name__)

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True, slots=True)
class Peer:
    availability: Availability
    ping: Callable[[], Awaitable[None]]


class HealthMonitor:
    def __init__(
        self,
        servicer: HealthServicer,
        services: Sequence[str],
        peers: Sequence[Peer],
        *,
        interval: float = 0.5,
        timeout: float = 2.0,
    ) -> None:
        self._servicer = servicer
        self._services = tuple(services)
        self._peers = tuple(peers)
        self._interval = interval
        self._timeout = timeout
        self._serving: bool | None = None

    @property
    def serving(self) -> bool:
        return bool(self._serving)

    async def _probe(self, peer: Peer) -> None:
        try:
            await asyncio.wait_for(peer.ping(), self._timeout)
        except (StoreError, RedisUnavailable):
            pass  # the peer's availability has it already
        except TimeoutError:
            peer.availability.failed(f"no answer within {self._timeout:g} s")
        except Exception as exc:
            peer.availability.failed(exc)

    async def check(self) -> bool:
        """Probes every peer once and publishes the result; True when serving."""
        await asyncio.gather(*(self._probe(peer) for peer in self._peers))
        serving = all(peer.availability.available for peer in self._peers)
        if serving != self._serving:
            self._serving = serving
            for service in self._services:
                await self._servicer.set(service, _SERVING if serving else _NOT_SERVING)
            log.debug("health: %s", "SERVING" if serving else "NOT_SERVING")
        return serving

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("health check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
