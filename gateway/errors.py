"""The one error hierarchy of the gateway package; each error knows its HTTP answer."""

from __future__ import annotations

__all__ = [
    "CsrfRejected",
    "GatewayConfigurationError",
    "GatewayError",
    "RateLimited",
    "RedisUnavailable",
    "UpstreamError",
]


class GatewayError(Exception):
    http_status = 500


class GatewayConfigurationError(GatewayError):
    """A setting is missing or invalid; the gateway does not start."""


class CsrfRejected(GatewayError):
    """A form arrived without the session's anti-forgery token."""

    http_status = 403


class RateLimited(GatewayError):
    """This client checked too many passwords or codes lately: 429 with Retry-After."""

    http_status = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:.1f} s")
        self.retry_after = retry_after


class RedisUnavailable(GatewayError):
    """Redis (sessions, rate limits) cannot answer; the request gets a 503 page."""

    http_status = 503


class UpstreamError(GatewayError):
    """The upstream could not answer: 502 (unreachable, broken) or 504 (too slow)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status
