"""The one error hierarchy of ca_service.

Each error carries a machine-readable ``reason`` (sent as google.rpc.ErrorInfo.reason), the
gRPC status it maps to (by name, so this module needs no grpc import) and the HTTP status
for HTTP adapters. Messages are English and never contain a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "AlreadyExists",
    "CAError",
    "ConfigurationError",
    "FailedPrecondition",
    "InvalidArgument",
    "InvalidCsr",
    "NotFound",
    "PermissionDenied",
    "StoreError",
    "Unauthenticated",
    "Unavailable",
]

ERROR_DOMAIN = "ca.v1"


class CAError(Exception):
    grpc_status: str = "INTERNAL"
    http_status: int = 500
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
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
    reason = "INVALID_ARGUMENT"


class InvalidCsr(InvalidArgument):
    reason = "INVALID_CSR"


class NotFound(CAError):
    grpc_status = "NOT_FOUND"
    http_status = 404
    reason = "NOT_FOUND"


class Unauthenticated(CAError):
    grpc_status = "UNAUTHENTICATED"
    http_status = 401
    reason = "UNAUTHENTICATED"


class PermissionDenied(CAError):
    grpc_status = "PERMISSION_DENIED"
    http_status = 403
    reason = "PERMISSION_DENIED"


class AlreadyExists(CAError):
    grpc_status = "ALREADY_EXISTS"
    http_status = 409
    reason = "ALREADY_EXISTS"


class FailedPrecondition(CAError):
    grpc_status = "FAILED_PRECONDITION"
    http_status = 409
    reason = "FAILED_PRECONDITION"


class Unavailable(CAError):
    grpc_status = "UNAVAILABLE"
    http_status = 503
    reason = "UNAVAILABLE"


class ConfigurationError(CAError):
    reason = "CONFIGURATION"


class StoreError(CAError):
    grpc_status = "UNAVAILABLE"
    http_status = 503
    reason = "STORE_UNAVAILABLE"


class InvalidCredentials(Unauthenticated):
    """Unknown user ID or wrong password: deliberately one answer for both (SPEC B9)."""

    reason = "INVALID_CREDENTIALS"


class Locked(FailedPrecondition):
    reason = "LOCKED"


class Blocked(FailedPrecondition):
    reason = "BLOCKED"


class AlreadyIssued(FailedPrecondition):
    reason = "ALREADY_ISSUED"
