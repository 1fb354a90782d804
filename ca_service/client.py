"""Client side of the gRPC API, shared by ca-admin, the tests and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ca_service.api import pb_grpc
from ca_service.shared.credentials import ClientCredential

__all__ = [
    "ApiError",
    "aio_secure_channel",
    "api_error",
    "channel_credentials",
    "secure_channel",
    "stub",
]


def channel_credentials(credential: ClientCredential) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=credential.trust_pem,
        private_key=credential.key_pem,
        certificate_chain=credential.certificate_pem,
    )


def _options(server_name: str | None) -> list[tuple[str, str]]:
    return [("grpc.ssl_target_name_override", server_name)] if server_name else []


def secure_channel(
    address: str, credential: ClientCredential, server_name: str | None = None
) -> grpc.Channel:
    return grpc.secure_channel(address, channel_credentials(credential), _options(server_name))


def aio_secure_channel(
    address: str, credential: ClientCredential, server_name: str | None = None
) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(address, channel_credentials(credential), _options(server_name))


def stub(channel: grpc.Channel | grpc.aio.Channel) -> pb_grpc.CertificateAuthorityStub:
    return pb_grpc.CertificateAuthorityStub(channel)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class ApiError:
    code: grpc.StatusCode
    message: str
    reason: str
    metadata: dict[str, str]


def api_error(error: grpc.RpcError) -> ApiError:
    """The status, message and google.rpc.ErrorInfo reason of a failed call."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    reason, metadata = "", {}
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
                reason, metadata = info.reason, dict(info.metadata)
    return ApiError(code, message, reason, metadata)
