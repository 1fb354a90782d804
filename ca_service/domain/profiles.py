"""Certificate profiles as declarative data (SPEC C5), checked when built."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

__all__ = ["CaProfile", "Caller", "ClientCertificateProfile", "IssuingUrls", "Role", "require_url"]


class Role(enum.Enum):
    """What a gRPC caller may do; written into its client certificate (subject OU)."""

    OPERATOR = "operator"
    GATEWAY = "gateway"
    SERVICE = "service"
    # The procedure portal (SPEC D1, D3): verifies its applicants' e-mail addresses and
    # sends their completion mail; no certificate or account operation.
    PORTAL = "portal"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who called the API: the role and the name (subject CN) of its client credential."""

    role: Role
    name: str

    @property
    def actor(self) -> str:
        """How the audit log names the caller, e.g. ``operator:operator``, ``service:billing``."""
        return f"{self.role.value}:{self.name}"


def require_url(value: str, name: str, schemes: frozenset[str]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"{name} must be an absolute {'/'.join(sorted(schemes))} URL: {value!r}")
    if not value.isascii() or any(ch.isspace() for ch in value):
        raise ValueError(f"{name} must be ASCII without spaces: {value!r}")


# How far before the issue time notBefore may lie (clients with slow clocks).
_MAX_SKEW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ClientCertificateProfile:
    """What every end-user client certificate carries besides its subject and key.

    Subject: O=<organisation>, CN=<user ID>. SAN: one URI, ``user_uri_prefix + user ID``,
    which names the user unambiguously because user IDs are unique (SPEC A2).
    ``delta_crl_url``, when set, is written as FreshestCRL (RFC 5280 4.2.1.15): relying
    parties that use delta CRLs find the delta from the certificate itself.
    """

    crl_url: str
    ocsp_url: str
    ca_issuers_url: str
    user_uri_prefix: str
    not_before_skew: timedelta = timedelta(minutes=5)
    delta_crl_url: str | None = None

    def __post_init__(self) -> None:
        http = frozenset({"http"})
        # RFC 5280 4.2.1.13 / 4.2.2.1 and RFC 5019: plain HTTP, or fetching them could
        # itself need a revocation check.
        require_url(self.crl_url, "crl_url", http)
        require_url(self.ocsp_url, "ocsp_url", http)
        require_url(self.ca_issuers_url, "ca_issuers_url", http)
        if self.delta_crl_url is not None:
            require_url(self.delta_crl_url, "delta_crl_url", http)
        prefix = self.user_uri_prefix
        if not prefix.isascii() or any(ch.isspace() for ch in prefix) or ":" not in prefix:
            raise ValueError(f"user_uri_prefix must be an ASCII URI prefix: {prefix!r}")
        if not timedelta(0) <= self.not_before_skew <= _MAX_SKEW:
            raise ValueError(f"not_before_skew must be between 0 and {_MAX_SKEW}")

    def user_uri(self, user_id: str) -> str:
        return self.user_uri_prefix + user_id


@dataclass(frozen=True, slots=True)
class IssuingUrls:
    """What the issuing CA's certificate points at, so that relying parties that check every
    certificate of a path find its status and its issuer: the root's CRL (the ARL, in
    CRLDistributionPoints) and the root's certificate (AIA caIssuers)."""

    crl_url: str
    ca_issuers_url: str

    def __post_init__(self) -> None:
        http = frozenset({"http"})
        require_url(self.crl_url, "root_crl_url", http)
        require_url(self.ca_issuers_url, "root ca_issuers_url", http)


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
