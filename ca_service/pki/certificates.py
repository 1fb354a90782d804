"""X.509 v3 certificates assembled as DER and signed through a :class:`Signer`.

Everything that is the same for every certificate of a profile (issuer name, signature
algorithm, constant extensions) is encoded once, with asn1crypto, when a
:class:`ClientCertificateFactory` is built; issuing a certificate then only encodes the
serial, validity, subject, key identifier and SAN and concatenates.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from asn1crypto import x509 as asn1_x509

from ca_service.domain.profiles import ClientCertificateProfile
from ca_service.domain.validity import Validity
from ca_service.pki import der
from ca_service.pki.signer import Signer, signs_in_process

__all__ = [
    "SERIAL_OCTETS",
    "ClientCertificateFactory",
    "build_certificate",
    "extension",
    "general_name",
    "key_identifier",
    "name_der",
    "new_serial",
]

# RFC 5280 4.1.2.2 allows up to 20 octets; CA/B-style guidance asks for >= 64 random bits.
# 16 octets with the top bit clear (positive) and the next bit set (fixed length) carry
# 126 bits from the CSPRNG.
SERIAL_OCTETS = 16

_URI = "uniform_resource_identifier"
_VERSION_3 = bytes.fromhex("a003020102")
_OID_SKI = bytes.fromhex("0603551d0e")
_OID_SAN = bytes.fromhex("0603551d11")
_OID_COMMON_NAME = bytes.fromhex("0603550403")
_OID_ORGANIZATION = bytes.fromhex("060355040a")
_OID_ORGANIZATIONAL_UNIT = bytes.fromhex("060355040b")


def new_serial() -> int:
    raw = bytearray(secrets.token_bytes(SERIAL_OCTETS))
    raw[0] = (raw[0] & 0x3F) | 0x40
    return int.from_bytes(raw, "big")


def key_identifier(spki_der: bytes) -> bytes:
    """RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits."""
    return hashlib.sha1(der.spki_key_bits(spki_der), usedforsecurity=False).digest()


@lru_cache(maxsize=4096)
def name_der(
    *, organization: str, common_name: str, organizational_unit: str | None = None
) -> bytes:
    """A Name with O, [OU,] CN as UTF8Strings, one attribute per RDN, general first."""
    attributes = [(_OID_ORGANIZATION, organization)]
    if organizational_unit is not None:
        attributes.append((_OID_ORGANIZATIONAL_UNIT, organizational_unit))
    attributes.append((_OID_COMMON_NAME, common_name))
    return der.sequence(
        *(der.set_of(der.sequence(oid, der.utf8_string(value))) for oid, value in attributes)
    )


def extension(extn_id: str, value: object, *, critical: bool = False) -> bytes:
    """DER of one Extension, encoded by asn1crypto from its registered name."""
    return bytes(
        asn1_x509.Extension({"extn_id": extn_id, "critical": critical, "extn_value": value}).dump()
    )


def general_name(kind: str, value: str) -> asn1_x509.GeneralName:
    """One GeneralName, e.g. ``general_name("uniform_resource_identifier", url)``."""
    return asn1_x509.GeneralName(name=kind, value=value)


def _ski_extension(spki_der: bytes) -> bytes:
    return der.sequence(_OID_SKI, der.octet_string(der.octet_string(key_identifier(spki_der))))


def build_certificate(
    signer: Signer,
    *,
    serial: int,
    issuer: bytes,
    not_before: datetime,
    not_after: datetime,
    subject: bytes,
    spki: bytes,
    extensions: Sequence[bytes],
) -> bytes:
    """Assembles and signs a certificate; ``issuer``, ``subject``, ``spki`` are DER."""
    if not 0 < serial < 1 << (8 * 20 - 1):
        raise ValueError("serial must be positive and fit in 20 octets")
    algorithm = signer.signature_algorithm
    tbs = der.sequence(
        _VERSION_3,
        der.integer(serial),
        algorithm,
        issuer,
        der.sequence(der.x509_time(not_before), der.x509_time(not_after)),
        subject,
        spki,
        der.tlv(0xA3, der.sequence(*extensions)),
    )
    return der.sequence(tbs, algorithm, der.bit_string(signer.sign(tbs)))


@dataclass(frozen=True, slots=True)
class ClientSubject:
    user_id: str
    organization: str


class ClientCertificateFactory:
    """Issues end-user client certificates under one issuing CA and one profile (SPEC C5)."""

    def __init__(
        self,
        signer: Signer,
        *,
        issuer_name: bytes,
        issuer_key_id: bytes,
        profile: ClientCertificateProfile,
    ) -> None:
        self._signer = signer
        self._issuer_name = issuer_name
        self._profile = profile
        # RFC 5280 4.2.1.9: CA:false may appear in an end-entity certificate; the policy
        # wants it explicit and critical so that nobody can mistake the certificate for a CA.
        basic_constraints = extension("basic_constraints", {"ca": False}, critical=True)
        key_usage = extension("key_usage", {"digital_signature"}, critical=True)
        extended_key_usage = extension("extended_key_usage", ["client_auth"])
        authority_key_id = extension("authority_key_identifier", {"key_identifier": issuer_key_id})
        crl_distribution_points = extension(
            "crl_distribution_points",
            [{"distribution_point": {"full_name": [general_name(_URI, profile.crl_url)]}}],
        )
        # RFC 5280 4.2.1.15: where the delta CRLs are; non-critical.
        freshest_crl = b""
        if profile.delta_crl_url is not None:
            delta_point = {"full_name": [general_name(_URI, profile.delta_crl_url)]}
            freshest_crl = extension("freshest_crl", [{"distribution_point": delta_point}])
        authority_info_access = extension(
            "authority_information_access",
            [
                {"access_method": "ocsp", "access_location": general_name(_URI, profile.ocsp_url)},
                {
                    "access_method": "ca_issuers",
                    "access_location": general_name(_URI, profile.ca_issuers_url),
                },
            ],
        )
        self._leading_extensions = basic_constraints + key_usage + extended_key_usage
        self._trailing_extensions = (
            authority_key_id + crl_distribution_points + freshest_crl + authority_info_access
        )

    @property
    def profile(self) -> ClientCertificateProfile:
        return self._profile

    @property
    def signs_in_process(self) -> bool:
        """False when the signer is an HSM: build from a worker thread, not the event loop."""
        return signs_in_process(self._signer)

    def build(
        self, *, serial: int, subject: ClientSubject, spki: bytes, validity: Validity
    ) -> bytes:
        san = der.sequence(
            _OID_SAN,
            der.octet_string(
                der.sequence(der.tlv(0x86, self._profile.user_uri(subject.user_id).encode("ascii")))
            ),
        )
        extensions = (
            self._leading_extensions + _ski_extension(spki) + san + self._trailing_extensions
        )
        return build_certificate(
            self._signer,
            serial=serial,
            issuer=self._issuer_name,
            not_before=validity.not_before,
            not_after=validity.not_after,
            subject=name_der(organization=subject.organization, common_name=subject.user_id),
            spki=spki,
            extensions=[extensions],
        )
