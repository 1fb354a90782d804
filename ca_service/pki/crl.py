"""X.509 v2 CRLs (RFC 5280 section 5) assembled from pre-encoded entries.

Each revocation is encoded once, when it happens (:func:`encode_entry`), and the store keeps
that DER next to the revocation. Publishing a CRL (:func:`build_crl`) is then a join of the
stored entries between a few constant pieces, one signature over the TBSCertList, and one
more join: no Python work per entry beyond what ``bytes.join`` does, so a million entries
take a fraction of a second.

Both full and delta CRLs are supported: a delta CRL carries the critical DeltaCRLIndicator
(RFC 5280 5.2.4) naming the CRL number of its base; a full CRL may carry FreshestCRL
(5.2.6) pointing at where the delta CRLs are published.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from ca_service.pki import der
from ca_service.pki.signer import Signer

__all__ = ["MAX_CRL_NUMBER", "Reason", "SignedArl", "build_crl", "encode_entry"]

# RFC 5280 5.2.3: CRL numbers are at most 20 octets (non-negative, so below 2**159).
MAX_CRL_NUMBER = (1 << 159) - 1
_MAX_SERIAL = (1 << 159) - 1

_VERSION_2 = der.integer(1)  # RFC 5280 5.1.2.1: v2 is INTEGER 1
_OID_REASON_CODE = bytes.fromhex("0603551d15")  # id-ce-cRLReasons 2.5.29.21
_OID_INVALIDITY_DATE = bytes.fromhex("0603551d18")  # id-ce-invalidityDate 2.5.29.24
_GENERALIZED_TIME = 0x18
_ENUMERATED = 0x0A
_CRL_EXTENSIONS_TAG = 0xA0  # crlExtensions [0] EXPLICIT Extensions


class Reason(enum.IntEnum):
    """CRLReason (RFC 5280 5.3.1); value 7 is not used."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    CERTIFICATE_HOLD = 6
    REMOVE_FROM_CRL = 8
    PRIVILEGE_WITHDRAWN = 9
    AA_COMPROMISE = 10

    @property
    def rfc_name(self) -> str:
        """The ASN.1 identifier, e.g. ``keyCompromise``."""
        return _RFC_NAMES[self]

    @classmethod
    def from_name(cls, name: str) -> Reason:
        """``key_compromise``, ``keyCompromise``, ``KEY-COMPROMISE``, ... (case, ``_``, ``-``
        and spaces are ignored)."""
        reason = _BY_FOLDED_NAME.get(_fold(name))
        if reason is None:
            valid = ", ".join(member.name.lower() for member in cls)
            raise ValueError(f"unknown revocation reason {name!r}; valid reasons: {valid}")
        return reason


_RFC_NAMES = {
    Reason.UNSPECIFIED: "unspecified",
    Reason.KEY_COMPROMISE: "keyCompromise",
    Reason.CA_COMPROMISE: "cACompromise",
    Reason.AFFILIATION_CHANGED: "affiliationChanged",
    Reason.SUPERSEDED: "superseded",
    Reason.CESSATION_OF_OPERATION: "cessationOfOperation",
    Reason.CERTIFICATE_HOLD: "certificateHold",
    Reason.REMOVE_FROM_CRL: "removeFromCRL",
    Reason.PRIVILEGE_WITHDRAWN: "privilegeWithdrawn",
    Reason.AA_COMPROMISE: "aACompromise",
}


def _fold(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "_- ")


# The snake-case member names and the RFC's camelCase names fold to the same keys.
_BY_FOLDED_NAME = {_fold(member.name): member for member in Reason}

# Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE (absent), extnValue OCTET STRING }
# holding the ENUMERATED reason, one constant per reason. RFC 5280 5.3.1: the reasonCode
# "unspecified" SHOULD NOT be used; absence of the extension means the same.
_REASON_EXTENSIONS: dict[Reason, bytes] = {
    reason: der.sequence(
        _OID_REASON_CODE, der.octet_string(der.tlv(_ENUMERATED, bytes((int(reason),))))
    )
    for reason in Reason
    if reason is not Reason.UNSPECIFIED
}
_REASONS = frozenset(Reason)

# Extension { invalidityDate, extnValue OCTET STRING { GeneralizedTime (17 octets) } }:
# 0x18 = 5 (OID) + 2 + 17 octets of content.
_INVALIDITY_DATE_PREFIX = b"\x30\x18" + _OID_INVALIDITY_DATE + b"\x04\x11"


def _aware_utc(instant: datetime, what: str) -> datetime:
    if not isinstance(instant, datetime):
        raise TypeError(f"{what} must be a datetime")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    utc = instant.astimezone(UTC)
    if utc.microsecond:
        raise ValueError(f"{what} must be whole seconds (RFC 5280 has no fractional seconds)")
    return utc


def _digits(utc: datetime) -> bytes:
    """MMDDHHMMSSZ; bytes %-formatting is several times faster than ``strftime`` here."""
    return b"%02d%02d%02d%02d%02dZ" % (utc.month, utc.day, utc.hour, utc.minute, utc.second)


def _generalized_time(utc: datetime) -> bytes:
    # RFC 5280 4.1.2.5.2 (and 5.3.2 for invalidityDate): YYYYMMDDHHMMSSZ, no fractions.
    return b"\x18\x0f%04d" % utc.year + _digits(utc)


def _time(instant: datetime, what: str) -> bytes:
    """UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5280 5.1.2.4-6); the same
    encoding as :func:`der.x509_time` without its cache, for per-revocation times."""
    utc = _aware_utc(instant, what)
    if 1950 <= utc.year < 2050:
        return b"\x17\x0d%02d" % (utc.year % 100) + _digits(utc)
    return _generalized_time(utc)


def encode_entry(
    serial: int,
    revoked_at: datetime,
    reason: Reason | None,
    invalidity_date: datetime | None = None,
) -> bytes:
    """DER of one ``revokedCertificates`` element (RFC 5280 5.1.2.6, 5.3).

    ``reason`` None or :attr:`Reason.UNSPECIFIED` leaves out the reasonCode extension;
    ``invalidity_date`` adds the invalidityDate extension (always GeneralizedTime, 5.3.2).
    Times must be timezone-aware whole seconds.
    """
    if isinstance(serial, bool) or not isinstance(serial, int):
        raise TypeError("serial must be an int")
    if not 0 < serial <= _MAX_SERIAL:
        raise ValueError("serial must be positive and fit in 20 octets")
    serial_value = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    body = bytes((0x02, len(serial_value))) + serial_value + _time(revoked_at, "revoked_at")
    extensions = b""
    if reason is not None:
        if reason not in _REASONS:
            raise ValueError(f"{reason!r} is not a CRLReason")
        extensions = _REASON_EXTENSIONS.get(reason, b"")
    if invalidity_date is not None:
        extensions += _INVALIDITY_DATE_PREFIX + _generalized_time(
            _aware_utc(invalidity_date, "invalidity_date")
        )
    if extensions:
        body += _header(0x30, len(extensions)) + extensions
    # At most 22 + 17 + 40 octets: the short length form, but stay general.
    return _header(0x30, len(body)) + body


def _header(tag: int, length: int) -> bytes:
    """Tag and DER length octets of an element whose value is ``length`` octets long."""
    if length < 0x80:
        return bytes((tag, length))
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(encoded))) + encoded


def _crl_extension(extn_id: str, value: object, *, critical: bool = False) -> bytes:
    return bytes(
        asn1_crl.TBSCertListExtension(
            {"extn_id": extn_id, "critical": critical, "extn_value": value}
        ).dump()
    )


@lru_cache(maxsize=64)
def _authority_key_identifier(issuer_key_id: bytes) -> bytes:
    # RFC 5280 5.2.1: MUST be present in conforming CRLs; keyIdentifier form, non-critical.
    return _crl_extension("authority_key_identifier", {"key_identifier": issuer_key_id})


@lru_cache(maxsize=64)
def _freshest_crl(url: str) -> bytes:
    # RFC 5280 5.2.6: CRLDistributionPoints syntax, MUST be non-critical.
    return _crl_extension(
        "freshest_crl",
        [
            {
                "distribution_point": {
                    "full_name": [
                        asn1_x509.GeneralName(name="uniform_resource_identifier", value=url)
                    ]
                }
            }
        ],
    )


@lru_cache(maxsize=64)
def _issuer_name(issuer_name: bytes) -> bytes:
    tag, _, end = der.read_tlv(issuer_name)
    if tag != 0x30 or end != len(issuer_name):
        raise ValueError("issuer_name must be the DER of one Name (a SEQUENCE)")
    return issuer_name


def build_crl(
    signer: Signer,
    *,
    issuer_name: bytes,
    issuer_key_id: bytes,
    this_update: datetime,
    next_update: datetime,
    crl_number: int,
    entries: Sequence[bytes],
    delta_base: int | None = None,
    freshest_crl_url: str | None = None,
) -> bytes:
    """Signs a v2 CertificateList over ``entries`` (outputs of :func:`encode_entry`).

    ``issuer_name`` is the DER Name of the issuing CA (its certificate's subject) and
    ``issuer_key_id`` its subject key identifier. With ``delta_base`` the CRL is a delta CRL
    over the full CRL numbered ``delta_base``; otherwise it is a full CRL, which may point
    at its deltas with ``freshest_crl_url``. The entries are trusted to be well-formed DER
    and are copied as they are, in the order given.
    """
    this_time = _time(this_update, "this_update")
    next_time = _time(next_update, "next_update")
    if not next_update > this_update:
        raise ValueError("next_update must be after this_update")
    if isinstance(crl_number, bool) or not 0 <= crl_number <= MAX_CRL_NUMBER:
        raise ValueError("crl_number must be non-negative and fit in 20 octets")
    if not issuer_key_id:
        raise ValueError("issuer_key_id must not be empty")
    extensions = [_authority_key_identifier(bytes(issuer_key_id))]
    # RFC 5280 5.2.3: CRLNumber MUST be included, non-critical.
    extensions.append(_crl_extension("crl_number", crl_number))
    if delta_base is not None:
        if isinstance(delta_base, bool) or not 0 <= delta_base < crl_number:
            raise ValueError("delta_base must be non-negative and below crl_number")
        if freshest_crl_url is not None:
            # RFC 5280 5.2.6: FreshestCRL MUST NOT appear in a delta CRL.
            raise ValueError("a delta CRL must not carry freshest_crl_url")
        # RFC 5280 5.2.4: DeltaCRLIndicator MUST be critical.
        extensions.append(_crl_extension("delta_crl_indicator", delta_base, critical=True))
    elif freshest_crl_url is not None:
        extensions.append(_freshest_crl(freshest_crl_url))

    algorithm = signer.signature_algorithm
    head = b"".join((_VERSION_2, algorithm, _issuer_name(bytes(issuer_name)), this_time, next_time))
    crl_extensions = der.tlv(_CRL_EXTENSIONS_TAG, der.sequence(*extensions))

    # The one place that scales with the number of entries: a C-level length sum and join.
    if not isinstance(entries, list | tuple):
        entries = list(entries)  # an iterator would be used up by the length sum
    entries_length = sum(map(len, entries))
    if entries_length:
        revoked_header = _header(0x30, entries_length)
        tbs_length = len(head) + len(revoked_header) + entries_length + len(crl_extensions)
        # One join straight into the TBS: the entries are copied once.
        tbs = b"".join((_header(0x30, tbs_length), head, revoked_header, *entries, crl_extensions))
    else:
        # RFC 5280 5.1.2.6: with no revoked certificates the field MUST be absent.
        tbs = der.sequence(head, crl_extensions)

    signature = der.bit_string(signer.sign(tbs))
    total = len(tbs) + len(algorithm) + len(signature)
    return b"".join((_header(0x30, total), tbs, algorithm, signature))


@dataclass(frozen=True, slots=True)
class SignedArl:
    """The root CA's CRL as served: its DER and what the HTTP answer says about it."""

    der: bytes
    number: int
    this_update: datetime
    next_update: datetime

    @classmethod
    def parse(cls, der: bytes) -> SignedArl:
        crl = x509.load_der_x509_crl(der)
        next_update = crl.next_update_utc
        if next_update is None:
            raise ValueError("the root CRL has no nextUpdate")
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        return cls(der, number, crl.last_update_utc, next_update)
