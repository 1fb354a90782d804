"""What the gateway's ``/-/health`` knows about its peers besides the revocation view: the
CA's own health (``grpc.health.v1`` Watch on the gateway's channel: NOT_SERVING while the
CA's SQL store or Redis is down) and the gateway's Redis (a PING every second, and every
failed use). Each change is logged once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ca_service.api import pb
from ca_service.shared.redis_peer import RedisPeer

__all__ = ["CA_SERVICE", "CaHealth", "probe_redis"]

log = logging.getLogger(__name__)

CA_SERVICE = pb.DESCRIPTOR.services_by_name["CertificateAuthority"].full_name
_SERVING = health_pb2.HealthCheckResponse.SERVING


class CaHealth:
    """The CA's health as it last told us: "SERVING", "NOT_SERVING", or "UNREACHABLE" when
    the watch stream itself fails (the CA process is gone)."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        retry_delay: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub: Any = health_pb2_grpc.HealthStub(channel)
        self._retry_delay = retry_delay
        self._monotonic = monotonic
        self.status = "UNKNOWN"
        self._since = monotonic()

    @property
    def serving(self) -> bool:
        return self.status == "SERVING"

    def _set(self, status: str) -> None:
        if status != self.status:
            if self.status != "UNKNOWN" or status != "SERVING":
                log.warning("the CA's health: %s (was %s)", status, self.status)
            self.status, self._since = status, self._monotonic()

    def report(self) -> dict[str, object]:
        return {
            "serving": self.serving,
            "status": self.status,
            "seconds_in_status": round(self._monotonic() - self._since, 3),
        }

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                stream = self._stub.Watch(health_pb2.HealthCheckRequest(service=CA_SERVICE))
                async for reply in stream:
                    self._set("SERVING" if reply.status == _SERVING else "NOT_SERVING")
            except asyncio.CancelledError:
                raise
            except grpc.RpcError:
                self._set("UNREACHABLE")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._retry_delay)


async def probe_redis(redis: RedisPeer, stop: asyncio.Event, interval: float = 1.0) -> None:
    """PINGs Redis every ``interval`` so that its availability changes with no traffic too
    (RedisPeer logs each change once)."""
    while not stop.is_set():
        with contextlib.suppress(Exception):
            await redis.ping()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
