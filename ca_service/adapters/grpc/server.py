"""Builds the gRPC server: mTLS credentials, interceptors, our API, health, reflection."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ca_service.adapters.grpc.interceptors import AuthorizationInterceptor
from ca_service.adapters.grpc.servicer import CertificateAuthorityServicer
from ca_service.api import pb, pb_grpc
from ca_service.errors import ConfigurationError
from ca_service.shared.credentials import ClientCredential

__all__ = ["SERVICE_NAME", "HealthServicer", "build_server"]

# grpcio-health-checking ships no type information.
HealthServicer = Any

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CertificateAuthority"].full_name

_OPTIONS = [
    ("grpc.max_receive_message_length", 1 << 20),
    ("grpc.keepalive_time_ms", 60_000),
]


def build_server(
    servicer: CertificateAuthorityServicer,
    credential: ClientCredential,
    address: str,
    *,
    reuse_port: bool = False,
) -> tuple[grpc.aio.Server, int, HealthServicer]:
    """Returns the server (not yet started), the port it bound and its health servicer.

    With ``reuse_port`` several worker processes bind the same port (SO_REUSEPORT) and the
    kernel spreads connections across them; otherwise a second bind fails loudly."""
    options = [*_OPTIONS, ("grpc.so_reuseport", 1 if reuse_port else 0)]
    server = grpc.aio.server(interceptors=[AuthorizationInterceptor()], options=options)
    pb_grpc.add_CertificateAuthorityServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    credentials = grpc.ssl_server_credentials(
        [(credential.key_pem, credential.certificate_pem)],
        root_certificates=credential.trust_pem,
        require_client_auth=True,
    )
    try:
        port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise ConfigurationError(f"cannot listen on {address}: {exc}") from None
    if port == 0:
        raise ConfigurationError(f"cannot listen on {address}")
    return server, port, health_servicer
