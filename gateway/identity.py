"""Who is calling: a presented client certificate checked and mapped to an identity (SPEC E2,
E3). Pure: the certificate, the issuing CA, the time and a revocation view are passed in.

The TLS layer takes any certificate (``gateway.tls``): this is where the chain (issued by
our issuing CA), validity, clientAuth and revocation are checked, on every request — also on
a resumed TLS session — so that a revocation takes effect within a second and a wrong
certificate gets a page saying why.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol
from urllib.parse import quote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import GatewayError

__all__ = [
    "IDENTITY_HEADERS",
    "Identity",
    "Refusal",
    "Refused",
    "RevocationView",
    "ascii_header_value",
    "identify",
    "identity_headers",
    "strip_identity_headers",
    "xfcc",
]

# Headers that carry identity upstream; whatever a client sends under these names is removed.
IDENTITY_HEADERS = ("x-forwarded-client-cert", "x-user-id", "x-org-id", "x-user-role")


class Refusal(enum.Enum):
    MALFORMED = "the client certificate cannot be read"
    NOT_OURS = "the client certificate was not issued by this CA"
    NOT_YET_VALID = "the client certificate is not valid yet"
    EXPIRED = "the client certificate has expired"
    NO_CLIENT_AUTH = "the client certificate is not for client authentication"
    REVOKED = "the client certificate has been revoked"
    STALE = "revocation status cannot be confirmed right now"
    UNKNOWN_USER = "the certificate's user is not registered"
    LOCKED = "the user ID is locked"
    BLOCKED = "the user ID is blocked"
    # On a route that asks for an identity card's certificate (gateway.card):
    CARD_NEEDED = "no identity card certificate was presented"
    NOT_A_CARD = "the certificate is not from a trusted identity card CA"
    OUR_CERTIFICATE_ON_CARD_ROUTE = "this CA's certificates are not identity card certificates"
    CARD_ON_USER_ROUTE = "an identity card certificate is not a user certificate"
    CARD_NOT_YET_VALID = "the identity card certificate is not valid yet"
    CARD_EXPIRED = "the identity card certificate has expired"
    CARD_NOT_FOR_SIGNING = "the identity card certificate's key usage does not allow signing"
    CARD_ATTRIBUTES_MISSING = "the identity card certificate lacks the holder's attributes"
    CARD_REVOKED = "the identity card certificate has been revoked"
    CARD_STALE = "the identity card CA's revocation list cannot be confirmed right now"


class Refused(GatewayError):
    http_status = 403

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


class RevocationView(Protocol):
    def is_revoked(self, serial: int) -> bool: ...

    def is_fresh(self) -> bool:
        """False when the view cannot prove it is current (then everyone is refused)."""


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    organization: str
    role: str
    serial: int
    fingerprint_sha256: str
    subject: str
    uri: str | None
    not_after: datetime
    # From the CA's record, once looked up (the certificate carries only the name).
    organization_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Parsed:
    identity: Identity
    not_before: datetime
    issuer_ok: bool
    client_auth: bool


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


@lru_cache(maxsize=4096)
def _parse(der: bytes, issuer_der: bytes) -> _Parsed | None:
    """Everything about a certificate that does not change with time, parsed once."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        issuer = x509.load_der_x509_certificate(issuer_der)
    except ValueError:
        return None
    try:
        certificate.verify_directly_issued_by(issuer)
        issuer_ok = True
    except (ValueError, TypeError, InvalidSignature):
        issuer_ok = False
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        client_auth = ExtendedKeyUsageOID.CLIENT_AUTH in usages
    except x509.ExtensionNotFound:
        client_auth = False
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    identity = Identity(
        user_id=_attribute(certificate.subject, NameOID.COMMON_NAME),
        organization=_attribute(certificate.subject, NameOID.ORGANIZATION_NAME),
        role="user",
        serial=certificate.serial_number,
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        subject=certificate.subject.rfc4514_string(),
        uri=uris[0] if uris else None,
        not_after=certificate.not_valid_after_utc,
    )
    return _Parsed(identity, certificate.not_valid_before_utc, issuer_ok, client_auth)


def identify(
    certificate_der: bytes, *, issuer_der: bytes, now: datetime, revocations: RevocationView
) -> Identity:
    """The caller's identity; raises :class:`Refused` saying why it cannot be trusted."""
    parsed = _parse(certificate_der, issuer_der)
    if parsed is None:
        raise Refused(Refusal.MALFORMED)
    if not parsed.issuer_ok:
        raise Refused(Refusal.NOT_OURS)
    if now < parsed.not_before:
        raise Refused(Refusal.NOT_YET_VALID)
    if now > parsed.identity.not_after:
        raise Refused(Refusal.EXPIRED)
    if not parsed.client_auth:
        raise Refused(Refusal.NO_CLIENT_AUTH)
    if not revocations.is_fresh():
        raise Refused(Refusal.STALE)
    if revocations.is_revoked(parsed.identity.serial):
        raise Refused(Refusal.REVOKED)
    return parsed.identity


def ascii_header_value(value: str) -> str:
    """Non-ASCII characters (UTF-8) percent-encoded: header values must be ASCII."""
    return quote(value, safe=" !#$&'()*+,-./:;<=>?@[]^_`{|}~\\\"=")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def xfcc(identity: Identity, by: str | None = None) -> str:
    """An Envoy-style ``x-forwarded-client-cert`` value: By, Hash, Subject, URI."""
    parts = []
    if by:
        parts.append(f"By={by}")
    parts.append(f"Hash={identity.fingerprint_sha256}")
    parts.append(f"Subject={_quoted(ascii_header_value(identity.subject))}")
    if identity.uri:
        parts.append(f"URI={identity.uri}")
    return ";".join(parts)


def strip_identity_headers(
    headers: Iterable[tuple[str, str]], names: Iterable[str] = IDENTITY_HEADERS
) -> list[tuple[str, str]]:
    """The client's headers without any that could pose as identity (case-insensitive)."""
    banned = {name.lower() for name in names}
    return [(name, value) for name, value in headers if name.lower() not in banned]


def identity_headers(
    identity: Identity, by: str | None = None, names: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """The headers the upstream receives; ``names`` renames them (configurable)."""
    rename = dict(names or {})
    values = {
        "x-forwarded-client-cert": xfcc(identity, by),
        "x-user-id": identity.user_id,
        # Header values are ASCII: a Japanese organisation name (used only until the CA's
        # record gave the organisation ID) travels percent-encoded.
        "x-org-id": identity.organization_id or ascii_header_value(identity.organization),
        "x-user-role": identity.role,
    }
    return [(rename.get(name, name), value) for name, value in values.items()]
