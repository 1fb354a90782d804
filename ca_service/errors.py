"""The one error hierarchy of ca_service.

Each error carries a machine-readable ``reason`` (one :class:`ErrorReason` of the proto's closed
catalogue, sent as google.rpc.ErrorInfo.reason), the
gRPC status it maps to (by name, so this module needs no grpc import) and the HTTP status
for HTTP adapters. Messages are English and never contain a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ca_service.api.reasons import ErrorReason

__all__ = [
    "AlreadyExists",
    "Busy",
    "CAError",
    "ConfigurationError",
    "ErrorReason",
    "FailedPrecondition",
    "InvalidArgument",
    "InvalidCsr",
    "NotFound",
    "PermissionDenied",
    "RedisUnavailable",
    "ResourceExhausted",
    "StoreError",
    "Unauthenticated",
    "Unavailable",
]

ERROR_DOMAIN = "ca.v1"


class CAError(Exception):
    grpc_status: str = "INTERNAL"
    http_status: int = 500
    reason: ErrorReason = ErrorReason.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        reason: ErrorReason | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: Mapping[str, str] = MappingProxyType(dict(metadata or {}))


class InvalidArgument(CAError):
    grpc_status = "INVALID_ARGUMENT"
    http_status = 400
    reason = ErrorReason.INVALID_ARGUMENT


class InvalidCsr(InvalidArgument):
    reason = ErrorReason.INVALID_CSR


class NotFound(CAError):
    grpc_status = "NOT_FOUND"
    http_status = 404
    reason = ErrorReason.NOT_FOUND


class Unauthenticated(CAError):
    grpc_status = "UNAUTHENTICATED"
    http_status = 401
    reason = ErrorReason.UNAUTHENTICATED


class PermissionDenied(CAError):
    grpc_status = "PERMISSION_DENIED"
    http_status = 403
    reason = ErrorReason.PERMISSION_DENIED


class AlreadyExists(CAError):
    grpc_status = "ALREADY_EXISTS"
    http_status = 409
    reason = ErrorReason.ALREADY_EXISTS


class FailedPrecondition(CAError):
    grpc_status = "FAILED_PRECONDITION"
    http_status = 409
    reason = ErrorReason.FAILED_PRECONDITION


class Unavailable(CAError):
    grpc_status = "UNAVAILABLE"
    http_status = 503
    reason = ErrorReason.UNAVAILABLE


class ResourceExhausted(CAError):
    grpc_status = "RESOURCE_EXHAUSTED"
    http_status = 429
    reason = ErrorReason.RESOURCE_EXHAUSTED


class Busy(ResourceExhausted):
    """Too many password checks at once in this process; the caller may try again in a
    moment (metadata ``retry_after_seconds``). Nothing was checked or counted."""

    reason = ErrorReason.BUSY


class ConfigurationError(CAError):
    reason = ErrorReason.CONFIGURATION


class StoreError(Unavailable):
    """The SQL store cannot answer (unreachable, connection lost, disk error)."""

    reason = ErrorReason.STORE_UNAVAILABLE


class RedisUnavailable(Unavailable):
    """Redis cannot answer (down, restarting, connection lost)."""

    reason = ErrorReason.REDIS_UNAVAILABLE


class InvalidCredentials(Unauthenticated):
    """Unknown user ID or wrong password: deliberately one answer for both (SPEC B9)."""

    reason = ErrorReason.INVALID_CREDENTIALS


class Locked(FailedPrecondition):
    reason = ErrorReason.LOCKED


class Blocked(FailedPrecondition):
    reason = ErrorReason.BLOCKED


class AlreadyIssued(FailedPrecondition):
    reason = ErrorReason.ALREADY_ISSUED
