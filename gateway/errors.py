"""The one error hierarchy of the gateway package; each error knows its HTTP answer."""

from __future__ import annotations

__all__ = [
    "CsrfRejected",
    "GatewayConfigurationError",
    "GatewayError",
    "UpstreamError",
]


class GatewayError(Exception):
    http_status = 500


class GatewayConfigurationError(GatewayError):
    """A setting is missing or invalid; the gateway does not start."""


class CsrfRejected(GatewayError):
    """A form arrived without the session's anti-forgery token."""

    http_status = 403


class UpstreamError(GatewayError):
    """The upstream could not answer: 502 (unreachable, broken) or 504 (too slow)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status
