"""Certificate profiles as declarative data (SPEC C5), checked when built."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

__all__ = ["CaProfile", "ClientCertificateProfile", "Role"]


class Role(enum.Enum):
    """What a gRPC caller may do; written into its client certificate (subject OU)."""

    OPERATOR = "operator"
    GATEWAY = "gateway"
    SERVICE = "service"


def _require_url(value: str, name: str, schemes: frozenset[str]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"{name} must be an absolute {'/'.join(sorted(schemes))} URL: {value!r}")
    if not value.isascii() or any(ch.isspace() for ch in value):
        raise ValueError(f"{name} must be ASCII without spaces: {value!r}")


@dataclass(frozen=True, slots=True)
class ClientCertificateProfile:
    """What every end-user client certificate carries besides its subject and key.

    Subject: O=<organisation>, CN=<user ID>. SAN: one URI, ``user_uri_prefix + user ID``,
    which names the user unambiguously because user IDs are unique (SPEC A2).
    """

    crl_url: str
    ocsp_url: str
    ca_issuers_url: str
    user_uri_prefix: str
    not_before_skew: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        http = frozenset({"http"})
        # RFC 5280 4.2.1.13 / 4.2.2.1 and RFC 5019: plain HTTP, or fetching them could
        # itself need a revocation check.
        _require_url(self.crl_url, "crl_url", http)
        _require_url(self.ocsp_url, "ocsp_url", http)
        _require_url(self.ca_issuers_url, "ca_issuers_url", http)
        prefix = self.user_uri_prefix
        if not prefix.isascii() or any(ch.isspace() for ch in prefix) or ":" not in prefix:
            raise ValueError(f"user_uri_prefix must be an ASCII URI prefix: {prefix!r}")
        if not timedelta(0) <= self.not_before_skew <= timedelta(hours=1):
            raise ValueError("not_before_skew must be between 0 and 1 hour")

    def user_uri(self, user_id: str) -> str:
        return self.user_uri_prefix + user_id


@dataclass(frozen=True, slots=True)
class CaProfile:
    """Names and lifetimes of the CA hierarchy created by ``ca-service init``."""

    organization: str
    root_common_name: str
    issuing_common_name: str
    services_common_name: str
    root_lifetime: timedelta = timedelta(days=20 * 365)
    issuing_lifetime: timedelta = timedelta(days=10 * 365)
    services_lifetime: timedelta = timedelta(days=10 * 365)
    service_credential_lifetime: timedelta = timedelta(days=2 * 365)

    def __post_init__(self) -> None:
        for name in ("organization", "root_common_name", "issuing_common_name"):
            value = getattr(self, name)
            if not value or len(value) > 64:
                raise ValueError(f"{name} must be 1-64 characters")
        if not self.root_lifetime > self.issuing_lifetime:
            raise ValueError("the root must outlive the issuing CA")
