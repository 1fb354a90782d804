"""``ca-service healthcheck``: asks a CA's gRPC health service (grpc.health.v1) over mutual
TLS and exits 0 when it answers SERVING, 1 otherwise with the reason on stderr.

For probes that cannot present a client certificate themselves (a Kubernetes exec probe:
the kubelet's own ``grpc:`` probe has no TLS, and the CA's gRPC port requires a client
certificate from the services CA). The health service answers any caller whose certificate
passes the handshake, whatever its role.

Kept apart from the server's wiring so that a probe imports only gRPC and the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ca_service.client import secure_channel
from ca_service.shared.credentials import ClientCredential

__all__ = ["HealthAnswer", "check_health", "probe_address"]

# Wildcard listening hosts (compared against, never bound).
_ANY_HOST = frozenset({"", "0.0.0.0", "::", "[::]", "*"})  # noqa: S104


def probe_address(listen_address: str) -> str:
    """The address to probe a server listening on ``listen_address`` at: a wildcard host
    (``0.0.0.0:50051``, ``[::]:50051``) becomes the loopback address, which the CA's gRPC
    certificate names."""
    host, separator, port = listen_address.rpartition(":")
    if not separator or not port.isdigit():
        raise ValueError(f"{listen_address!r} is not HOST:PORT")
    if host in _ANY_HOST:
        host = "127.0.0.1"
    return f"{host}:{port}"


@dataclass(frozen=True)
class HealthAnswer:
    serving: bool
    detail: str


def check_health(
    address: str,
    credential: ClientCredential,
    *,
    service: str = "",
    server_name: str | None = None,
    timeout: float = 3.0,
) -> HealthAnswer:
    """One Health/Check call; never raises for an unreachable or unhealthy server."""
    with secure_channel(address, credential, server_name) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        try:
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return HealthAnswer(False, f"{code.name}: {error.details() or 'no detail'}")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return HealthAnswer(response.status == health_pb2.HealthCheckResponse.SERVING, status)
