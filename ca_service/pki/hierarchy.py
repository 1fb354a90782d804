"""The CA hierarchy made by ``ca-service init``.

- root CA (self-signed) -> issuing CA (pathLen 0) -> end-user client certificates; the
  issuing CA's certificate names the root's CRL (the ARL, :func:`sign_arl`) and the root's
  certificate (AIA caIssuers), so that relying parties that check every certificate of the
  path (Java's PKIX, Windows, pyhanko-certvalidator) find the issuing CA's status;
- a separate, self-signed *services CA* for the gRPC API's own mTLS: the server's
  certificate and the operator/gateway/service client certificates. Keeping it apart from
  the user hierarchy means no end-user certificate can ever authenticate to the API.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca_service.domain.profiles import CaProfile, IssuingUrls, Role
from ca_service.pki.certificates import (
    build_certificate,
    extension,
    general_name,
    key_identifier,
    name_der,
    new_serial,
)
from ca_service.pki.crl import build_crl
from ca_service.pki.keys import CaPrivateKey, KeyAlgorithm, generate_key
from ca_service.pki.signer import Signer, SoftwareSigner

__all__ = [
    "CaPair",
    "IssuedCa",
    "create_pair",
    "create_root",
    "create_service_credential",
    "create_subordinate",
    "create_subordinate_for",
    "reissue_subordinate",
    "sign_arl",
]

# Back-dating CA certificates a little keeps relying parties with slow clocks happy.
_CA_BACKDATE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class IssuedCa:
    certificate_der: bytes
    subject: bytes
    key_id: bytes


def _spki(key: CaPrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _whole_seconds(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(microsecond=0)


def _uri(url: str) -> asn1_x509.GeneralName:
    return general_name("uniform_resource_identifier", url)


def _ca_extensions(
    key_id: bytes,
    issuer_key_id: bytes | None,
    path_length: int | None,
    urls: IssuingUrls | None = None,
) -> list[bytes]:
    constraints: dict[str, object] = {"ca": True}
    if path_length is not None:
        constraints["path_len_constraint"] = path_length
    extensions = [
        # RFC 5280 4.2.1.9: MUST be present and critical in CA certificates.
        extension("basic_constraints", constraints, critical=True),
        # RFC 5280 4.2.1.3: keyCertSign and cRLSign; critical.
        extension("key_usage", {"key_cert_sign", "crl_sign"}, critical=True),
        extension("key_identifier", key_id),
    ]
    if issuer_key_id is not None:
        extensions.append(extension("authority_key_identifier", {"key_identifier": issuer_key_id}))
    if urls is not None:
        # RFC 5280 4.2.1.13 and 4.2.2.1; no OCSP URL: the root answers through its CRL only.
        extensions.append(
            extension(
                "crl_distribution_points",
                [{"distribution_point": {"full_name": [_uri(urls.crl_url)]}}],
            )
        )
        extensions.append(
            extension(
                "authority_information_access",
                [{"access_method": "ca_issuers", "access_location": _uri(urls.ca_issuers_url)}],
            )
        )
    return extensions


def create_root(
    key: CaPrivateKey, profile: CaProfile, common_name: str, now: datetime, lifetime: timedelta
) -> IssuedCa:
    subject = name_der(organization=profile.organization, common_name=common_name)
    spki = _spki(key)
    key_id = key_identifier(spki)
    not_before = _whole_seconds(now - _CA_BACKDATE)
    certificate = build_certificate(
        SoftwareSigner(key),
        serial=new_serial(),
        issuer=subject,
        not_before=not_before,
        not_after=not_before + lifetime,
        subject=subject,
        spki=spki,
        # RFC 5280 4.2.1.1: AKI may be omitted in a self-signed certificate.
        extensions=_ca_extensions(key_id, None, None),
    )
    return IssuedCa(certificate, subject, key_id)


def create_subordinate(
    issuer: IssuedCa,
    issuer_signer: Signer,
    key: CaPrivateKey,
    profile: CaProfile,
    common_name: str,
    now: datetime,
    lifetime: timedelta,
    urls: IssuingUrls | None = None,
) -> IssuedCa:
    return create_subordinate_for(
        issuer, issuer_signer, _spki(key), profile, common_name, now, lifetime, urls
    )


def create_subordinate_for(
    issuer: IssuedCa,
    issuer_signer: Signer,
    spki: bytes,
    profile: CaProfile,
    common_name: str,
    now: datetime,
    lifetime: timedelta,
    urls: IssuingUrls | None = None,
) -> IssuedCa:
    """A subordinate CA for the public key ``spki``, whose private key is elsewhere (an HSM)."""
    subject = name_der(organization=profile.organization, common_name=common_name)
    not_before = _whole_seconds(now - _CA_BACKDATE)
    return reissue_subordinate(
        issuer,
        issuer_signer,
        subject=subject,
        spki=spki,
        key_id=key_identifier(spki),
        not_before=not_before,
        not_after=not_before + lifetime,
        urls=urls,
    )


def reissue_subordinate(
    issuer: IssuedCa,
    issuer_signer: Signer,
    *,
    subject: bytes,
    spki: bytes,
    key_id: bytes,
    not_before: datetime,
    not_after: datetime,
    urls: IssuingUrls | None,
) -> IssuedCa:
    """A subordinate CA certificate (pathLen 0) for the given name, key, key identifier and
    validity, with a new serial. With the values of an existing certificate it re-issues that
    certificate: everything it issued still chains to the new one."""
    certificate = build_certificate(
        issuer_signer,
        serial=new_serial(),
        issuer=issuer.subject,
        not_before=not_before,
        not_after=not_after,
        subject=subject,
        spki=spki,
        extensions=_ca_extensions(key_id, issuer.key_id, 0, urls),
    )
    return IssuedCa(certificate, subject, key_id)


def sign_arl(
    root: IssuedCa,
    root_signer: Signer,
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    revoked: Sequence[bytes] = (),
) -> bytes:
    """The root's CRL (an ARL: it covers the CA certificates the root issued). ``revoked``
    holds pre-encoded entries (:func:`ca_service.pki.crl.encode_entry`); none today."""
    return build_crl(
        root_signer,
        issuer_name=root.subject,
        issuer_key_id=root.key_id,
        this_update=_whole_seconds(this_update),
        next_update=_whole_seconds(next_update),
        crl_number=number,
        entries=list(revoked),
    )


def create_service_credential(
    issuer: IssuedCa,
    issuer_signer: Signer,
    key: CaPrivateKey,
    profile: CaProfile,
    *,
    name: str,
    role: Role | None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    now: datetime,
) -> bytes:
    """A TLS certificate under the services CA: a gRPC server certificate when ``role`` is
    None, else a client certificate whose OU names the caller's role."""
    subject = name_der(
        organization=profile.organization,
        organizational_unit=role.value if role is not None else None,
        common_name=name,
    )
    spki = _spki(key)
    not_before = _whole_seconds(now - timedelta(minutes=5))
    extensions = [
        extension("basic_constraints", {"ca": False}, critical=True),
        extension("key_usage", {"digital_signature"}, critical=True),
        extension("extended_key_usage", ["client_auth" if role is not None else "server_auth"]),
        extension("key_identifier", key_identifier(spki)),
        extension("authority_key_identifier", {"key_identifier": issuer.key_id}),
    ]
    general_names = [general_name("dns_name", dns) for dns in dns_names]
    general_names += [
        general_name("ip_address", str(ipaddress.ip_address(ip))) for ip in ip_addresses
    ]
    if general_names:
        extensions.append(extension("subject_alt_name", general_names))
    return build_certificate(
        issuer_signer,
        serial=new_serial(),
        issuer=issuer.subject,
        not_before=not_before,
        not_after=not_before + profile.service_credential_lifetime,
        subject=subject,
        spki=spki,
        extensions=extensions,
    )


@dataclass(frozen=True, slots=True)
class CaPair:
    """A root CA and the issuing CA under it, with their keys."""

    root: IssuedCa
    root_key: CaPrivateKey
    issuing: IssuedCa
    issuing_key: CaPrivateKey


def create_pair(
    algorithm: KeyAlgorithm, profile: CaProfile, now: datetime, urls: IssuingUrls | None = None
) -> CaPair:
    """New keys, a self-signed root and an issuing CA (pathLen 0) named by ``profile``; with
    ``urls``, the issuing CA's certificate points at the root's CRL and certificate."""
    root_key = generate_key(algorithm)
    root = create_root(root_key, profile, profile.root_common_name, now, profile.root_lifetime)
    issuing_key = generate_key(algorithm)
    issuing = create_subordinate(
        root,
        SoftwareSigner(root_key),
        issuing_key,
        profile,
        profile.issuing_common_name,
        now,
        profile.issuing_lifetime,
        urls,
    )
    return CaPair(root, root_key, issuing, issuing_key)
