"""OCSP (RFC 6960) in the RFC 5019 "lightweight" profile: requests in, signed responses out.

- :func:`create_ocsp_signing_certificate` issues the *delegated responder* certificate
  (RFC 6960 4.2.2.2) with which responses are signed, so that the issuing CA key signs
  nothing but certificates and CRLs.
- :func:`parse_request` turns whatever arrived over HTTP into an :class:`OcspRequest` or
  raises :class:`OcspMalformed` (answered with :func:`error_response`
  ``"malformed_request"``). The input is untrusted: it is checked as strict DER by a bounded,
  non-recursive walk before asn1crypto sees it, so no input makes it recurse, hang or raise
  anything but :class:`OcspMalformed`.
- :func:`build_response` assembles a BasicOCSPResponse from pre-encoded pieces and signs it
  through a :class:`~ca_service.pki.signer.Signer`; the constant parts (responder ID,
  certificate, algorithm) are encoded once and cached, so a responder can pre-sign many
  responses cheaply.

No I/O and no clock reads: every time is passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509

from ca_service.pki import der
from ca_service.pki.certificates import (
    build_certificate,
    extension,
    key_identifier,
    name_der,
    new_serial,
)
from ca_service.pki.signer import Signer

__all__ = [
    "MAX_CERT_IDS",
    "MAX_REQUEST_SIZE",
    "CertId",
    "CertStatus",
    "OcspMalformed",
    "OcspRequest",
    "SingleStatus",
    "build_response",
    "create_ocsp_signing_certificate",
    "error_response",
    "parse_request",
    "plain_cert_id",
]

# RFC 5019 2.1.1 asks clients to put one CertID in a request; a few more cost little and
# help clients that batch a chain, but an unbounded list is an amplification vector.
MAX_CERT_IDS: Final = 16
# An OCSP request is a few hundred octets (a signed one with a certificate, a few KiB);
# anything bigger is refused before it is parsed.
MAX_REQUEST_SIZE: Final = 64 * 1024
# RFC 8954 2.1: Nonce ::= OCTET STRING (SIZE(1..32)).
_NONCE_MIN: Final = 1
_NONCE_MAX: Final = 32
# A request (with signature and certificates) nests about a dozen levels deep; the limit
# keeps every later step, asn1crypto included, far from the recursion limit.
_MAX_DEPTH: Final = 32
# RFC 5280 4.1.2.2: serial numbers are at most 20 octets. A longer one cannot name a
# certificate of a conforming CA.
_MAX_SERIAL_OCTETS: Final = 20
_MAX_EXTENSIONS: Final = 16
# Real OIDs are a few dozen octets; a 2.25 UUID OID is about 20.
_MAX_OID_OCTETS: Final = 128
# An unsigned request has a few dozen DER elements, a signed one with a certificate or
# two a few hundred. Checking each element costs about a microsecond, so the cap bounds
# the work on hostile input to a few milliseconds whatever its size.
_MAX_ELEMENTS: Final = 4096

_OID_NONCE: Final = "1.3.6.1.5.5.7.48.1.2"
_OID_ACCEPTABLE_RESPONSES: Final = "1.3.6.1.5.5.7.48.1.4"
_OID_BASIC_RESPONSE: Final = "1.3.6.1.5.5.7.48.1.1"
# The request extensions this responder acts on; any other one marked critical makes the
# request unanswerable (RFC 6960 4.4: unrecognised extensions are ignored unless critical).
_UNDERSTOOD_REQUEST_EXTENSIONS: Final = frozenset({_OID_NONCE, _OID_ACCEPTABLE_RESPONSES})

# DER of the object identifiers and fixed encodings used in responses.
_OID_NONCE_DER: Final = bytes.fromhex("06092b0601050507300102")
_OID_BASIC_RESPONSE_DER: Final = bytes.fromhex("06092b0601050507300101")
_NULL: Final = b"\x05\x00"
_STATUS_SUCCESSFUL: Final = b"\x0a\x01\x00"  # OCSPResponseStatus ::= ENUMERATED, 0
_GOOD: Final = b"\x80\x00"  # [0] IMPLICIT NULL
_UNKNOWN: Final = b"\x82\x00"  # [2] IMPLICIT UnknownInfo (NULL)


class OcspMalformed(ValueError):
    """The request is not a well-formed OCSP request this responder can answer; the
    HTTP layer answers ``error_response("malformed_request")`` (RFC 6960 2.3)."""


# --------------------------------------------------------------------------- responder cert


def _whole_seconds(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return instant.astimezone(UTC).replace(microsecond=0)


def create_ocsp_signing_certificate(
    issuer_signer: Signer,
    *,
    issuer_name: bytes,
    issuer_key_id: bytes,
    responder_spki: bytes,
    common_name: str,
    organization: str,
    not_before: datetime,
    not_after: datetime,
) -> bytes:
    """The delegated OCSP responder certificate, signed by the CA whose certificates the
    responder reports on (RFC 6960 4.2.2.2: it must be issued directly by that CA).

    ``issuer_name`` is the issuing CA's subject (DER), ``issuer_key_id`` its SKI and
    ``responder_spki`` the responder key's SubjectPublicKeyInfo (DER).
    """
    start = _whole_seconds(not_before)
    end = _whole_seconds(not_after)
    if not start < end:
        raise ValueError("not_after must be later than not_before")
    extensions = [
        # RFC 5280 4.2.1.9: an end entity; explicit and critical so that nobody mistakes
        # the certificate for a CA.
        extension("basic_constraints", {"ca": False}, critical=True),
        # RFC 6960 4.2.2.2: the responder signs responses and nothing else.
        extension("key_usage", {"digital_signature"}, critical=True),
        # RFC 6960 4.2.2.2: id-kp-OCSPSigning is what authorises the delegation.
        extension("extended_key_usage", ["ocsp_signing"]),
        # RFC 6960 4.2.2.2.1: clients need not check the responder certificate's own
        # revocation status. The price is that a stolen responder key stays usable until
        # the certificate expires, so callers give it a short lifetime and rotate it.
        extension("ocsp_no_check", None),
        extension("key_identifier", key_identifier(responder_spki)),
        extension("authority_key_identifier", {"key_identifier": issuer_key_id}),
    ]
    return build_certificate(
        issuer_signer,
        serial=new_serial(),
        issuer=issuer_name,
        not_before=start,
        not_after=end,
        subject=name_der(organization=organization, common_name=common_name),
        spki=responder_spki,
        extensions=extensions,
    )


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class CertId:
    """One CertID of a request (RFC 6960 4.1.1). ``der`` is its exact encoding, echoed in
    the SingleResponse so that the client can match answer to question byte for byte."""

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes


@dataclass(frozen=True, slots=True)
class OcspRequest:
    cert_ids: tuple[CertId, ...]
    nonce: bytes | None


def _hash_algorithm_encodings() -> dict[bytes, tuple[str, int]]:
    """Every accepted DER AlgorithmIdentifier of a CertID hash, with its name and digest
    size. RFC 5754 2 says SHA-2 parameters are absent, but NULL ones are seen in the wild
    (OpenSSL writes NULL for SHA-1); both are accepted, nothing else."""
    algorithms = {
        "sha1": ("06052b0e03021a", 20),
        "sha256": ("0609608648016503040201", 32),
        "sha384": ("0609608648016503040202", 48),
        "sha512": ("0609608648016503040203", 64),
    }
    encodings: dict[bytes, tuple[str, int]] = {}
    for name, (oid_hex, size) in algorithms.items():
        oid = bytes.fromhex(oid_hex)
        encodings[der.sequence(oid)] = (name, size)
        encodings[der.sequence(oid, _NULL)] = (name, size)
    return encodings


_HASH_ALGORITHMS: Final = _hash_algorithm_encodings()


def _strict_tlv(data: bytes, offset: int, limit: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the element at ``offset``, which must end at
    or before ``limit``. DER only: definite, minimal lengths (X.690 10.1, 8.1.3.5)."""
    if offset + 2 > limit:
        raise OcspMalformed("truncated DER")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        # X.690 8.1.2.4: multi-octet tags; no type in an OCSP request uses one.
        raise OcspMalformed("high tag numbers do not occur in OCSP")
    first = data[offset + 1]
    position = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise OcspMalformed("indefinite length (BER, not DER)")
    else:
        count = first & 0x7F
        # Three length octets already describe 16 MiB, far beyond MAX_REQUEST_SIZE.
        if count > 3 or position + count > limit:
            raise OcspMalformed("bad DER length")
        length = int.from_bytes(data[position : position + count], "big")
        if data[position] == 0 or length < 0x80:
            raise OcspMalformed("non-minimal DER length")
        position += count
    end = position + length
    if end > limit:
        raise OcspMalformed("truncated DER")
    return tag, position, end


def _check_primitive(tag: int, value: bytes) -> None:
    """DER rules for the universal primitive types that appear in OCSP requests."""
    if tag == 0x01:  # BOOLEAN, X.690 11.1
        if value not in (b"\x00", b"\xff"):
            raise OcspMalformed("BOOLEAN is not DER")
    elif tag in (0x02, 0x0A):  # INTEGER, ENUMERATED: X.690 8.3.2 minimal octets
        if not value or (
            len(value) > 1
            and ((value[0] == 0 and value[1] < 0x80) or (value[0] == 0xFF and value[1] >= 0x80))
        ):
            raise OcspMalformed("INTEGER is not minimally encoded")
    elif tag == 0x05:  # NULL
        if value:
            raise OcspMalformed("NULL with contents")
    elif tag == 0x06:  # OBJECT IDENTIFIER, X.690 8.19.2: no 0x80 padding, last octet ends
        if not value or value[-1] & 0x80:
            raise OcspMalformed("truncated OBJECT IDENTIFIER")
        if len(value) > _MAX_OID_OCTETS:
            # Decoding an arc is quadratic in its length (asn1crypto builds the integer
            # seven bits at a time), and no OID in an OCSP request comes near the cap.
            raise OcspMalformed("OBJECT IDENTIFIER too long")
        previous = 0
        for octet in value:
            if octet == 0x80 and not previous & 0x80:
                raise OcspMalformed("OBJECT IDENTIFIER arc is not minimal")
            previous = octet
    elif tag == 0x03 and (  # BIT STRING, X.690 8.6.2 / 11.2
        not value or value[0] > 7 or (len(value) == 1 and value[0])
    ):
        raise OcspMalformed("BIT STRING is not DER")


def _check_der(data: bytes) -> None:
    """Walks the whole element tree without recursion: one element, no trailing bytes,
    definite minimal lengths, low tag numbers, constructed SEQUENCE/SET only, DER
    primitives, bounded depth and element count. Linear in the input."""
    tag, start, end = _strict_tlv(data, 0, len(data))
    if tag != 0x30:
        raise OcspMalformed("an OCSPRequest is a SEQUENCE")
    if end != len(data):
        raise OcspMalformed("trailing bytes after the OCSPRequest")
    open_ends = [end]
    position = start
    elements = 1
    while open_ends:
        if position == open_ends[-1]:
            open_ends.pop()
            continue
        elements += 1
        if elements > _MAX_ELEMENTS:
            raise OcspMalformed("too many DER elements")
        tag, start, end = _strict_tlv(data, position, open_ends[-1])
        number = tag & 0x1F
        constructed = bool(tag & 0x20)
        if tag & 0xC0 == 0:  # universal class
            if number == 0:
                raise OcspMalformed("end-of-contents octets (BER, not DER)")
            if constructed != (number in (0x10, 0x11)):
                # X.690 10.2: strings are primitive in DER; SEQUENCE and SET constructed.
                raise OcspMalformed("constructed/primitive form is not DER")
            if not constructed:
                _check_primitive(number, data[start:end])
        if constructed:
            if len(open_ends) >= _MAX_DEPTH:
                raise OcspMalformed("nested too deeply")
            open_ends.append(end)
            position = start
        else:
            position = end


def _signed_integer(value: int) -> bytes:
    length = (value + (value < 0)).bit_length() // 8 + 1
    return der.tlv(0x02, value.to_bytes(length, "big", signed=True))


def _exact_fields(value: asn1_core.Sequence) -> asn1_core.Sequence:
    """asn1crypto keeps elements that follow the last field of a SEQUENCE (or come out of
    order) as extra children instead of failing; the RFC 6960 types have no extension
    marker, so any such element makes the request malformed."""
    _ = value[0]  # parses the children
    if len(value.children) > len(value._fields):
        raise OcspMalformed(f"unexpected elements in {type(value).__name__}")
    return value


def _cert_id(raw: asn1_ocsp.CertId) -> CertId:
    encoded = bytes(raw.dump())
    algorithm_der = bytes(raw["hash_algorithm"].dump())
    algorithm = _HASH_ALGORITHMS.get(algorithm_der)
    if algorithm is None:
        raise OcspMalformed("unsupported CertID hash algorithm")
    name, size = algorithm
    name_hash = bytes(raw["issuer_name_hash"].native)
    key_hash = bytes(raw["issuer_key_hash"].native)
    if len(name_hash) != size or len(key_hash) != size:
        raise OcspMalformed(f"CertID hashes are not {name} digests")
    serial = int(raw["serial_number"].native)
    serial_der = _signed_integer(serial)
    if len(serial_der) - 2 > _MAX_SERIAL_OCTETS:
        raise OcspMalformed("serial number longer than 20 octets")
    # The CertID is echoed verbatim (RFC 6960 4.2.1); it must be exactly the canonical DER
    # of its fields, or the response would carry a non-DER element.
    canonical = der.sequence(
        algorithm_der, der.octet_string(name_hash), der.octet_string(key_hash), serial_der
    )
    if canonical != encoded:
        raise OcspMalformed("CertID is not DER")
    return CertId(name, name_hash, key_hash, serial, encoded)


def _check_extensions(extensions: asn1_core.SequenceOf, understood: frozenset[str]) -> None:
    if isinstance(extensions, asn1_core.Void):
        return
    # RFC 5280 4.1 (imported by RFC 6960): Extensions ::= SEQUENCE SIZE (1..MAX). RFC 6960
    # 4.4 defines a handful of extensions, each allowed once; the cap is counted before
    # any entry is decoded.
    if not 1 <= len(extensions) <= _MAX_EXTENSIONS:
        raise OcspMalformed(f"an extension list holds 1 to {_MAX_EXTENSIONS} extensions")
    seen: set[str] = set()
    for item in extensions:
        oid = _exact_fields(item)["extn_id"].dotted
        if oid in seen:
            # RFC 5280 4.2: at most one instance of an extension.
            raise OcspMalformed("duplicate extension")
        seen.add(oid)
        if item["critical"].native and oid not in understood:
            raise OcspMalformed("unsupported critical extension")


def _nonce(extension_value: bytes) -> bytes:
    """RFC 8954 2.1: the extnValue holds an OCTET STRING of 1 to 32 octets."""
    tag, start, end = _strict_tlv(extension_value, 0, len(extension_value))
    if tag != 0x04 or end != len(extension_value):
        raise OcspMalformed("nonce is not an OCTET STRING")
    if not _NONCE_MIN <= end - start <= _NONCE_MAX:
        raise OcspMalformed("nonce must be 1 to 32 octets")
    return extension_value[start:end]


def _request_fields(request: asn1_ocsp.OCSPRequest) -> OcspRequest:
    # Every part is decoded here, inside parse_request's guard: asn1crypto parses lazily,
    # and a part left undecoded would fail later, outside it.
    _exact_fields(request)
    tbs = _exact_fields(request["tbs_request"])
    if tbs["version"].native != "v1":
        raise OcspMalformed("unsupported OCSP request version")
    requestor_name = tbs["requestor_name"]
    if not isinstance(requestor_name, asn1_core.Void):
        # RFC 6960 4.1.2: only meaningful in signed requests, which are not required here;
        # its CHOICE must be valid, its contents are ignored (decoding a huge Name costs
        # far more than anything else in a request).
        _ = requestor_name.chosen
    signature = request["optional_signature"]
    if not isinstance(signature, asn1_core.Void):
        # RFC 6960 4.1.2: the signature is optional and this responder does not require
        # one; it is ignored, but its outer shape must parse. Certificates inside it are
        # not decoded (the DER walk has already bounded them).
        _exact_fields(signature)
        _ = signature["signature_algorithm"]["algorithm"].dotted, signature["signature"].native
        _ = len(signature["certs"])

    # Counted before any entry is decoded.
    request_list = tbs["request_list"]
    if not 1 <= len(request_list) <= MAX_CERT_IDS:
        raise OcspMalformed(f"a request must carry 1 to {MAX_CERT_IDS} CertIDs")
    cert_ids = []
    for item in request_list:
        # No single-request extension is acted on (RFC 6960 4.4.6's service locator is
        # for proxies), so a critical one makes the request unanswerable.
        _exact_fields(item)
        _check_extensions(item["single_request_extensions"], frozenset())
        cert_ids.append(_cert_id(item["req_cert"]))

    nonce = None
    extensions = tbs["request_extensions"]
    _check_extensions(extensions, _UNDERSTOOD_REQUEST_EXTENSIONS)
    for item in extensions:
        oid = item["extn_id"].dotted
        value = bytes(item["extn_value"].contents)
        if oid == _OID_NONCE:
            nonce = _nonce(value)
        elif oid == _OID_ACCEPTABLE_RESPONSES:
            accepted = asn1_ocsp.AcceptableResponses.load(value, strict=True)
            # RFC 6960 4.4.3: a client must accept id-pkix-ocsp-basic, the only type sent.
            if _OID_BASIC_RESPONSE not in {response_type.dotted for response_type in accepted}:
                raise OcspMalformed("the client does not accept basic OCSP responses")
    return OcspRequest(tuple(cert_ids), nonce)


# The 8 header octets of a plain request (see plain_cert_id) of n octets, n <= 129: four
# SEQUENCE headers with one-octet lengths, each wrapping exactly the rest.
_PLAIN_PREFIXES: Final = {
    n: bytes((0x30, n - 2, 0x30, n - 4, 0x30, n - 6, 0x30, n - 8)) for n in range(10, 130)
}
_PLAIN_DEPTH: Final = 4  # OCSPRequest > TBSRequest > requestList > Request > CertID


def plain_cert_id(data: bytes) -> bytes | None:
    """The CertID of a request in the RFC 5019 2.1.1 minimal shape — one CertID, no
    version, requestor name, extensions or signature — or None for any other shape.

    Only the four enclosing SEQUENCE headers are checked (DER lengths, nothing after
    them), not the CertID itself: the result is meant as a lookup key among CertIDs that
    :func:`parse_request` accepted before, for which the whole request is then exactly
    as valid as the one parsed. Cheap enough for every request on the hot path."""
    size = len(data)
    prefix = _PLAIN_PREFIXES.get(size)
    if prefix is not None:
        return data[8:] if data.startswith(prefix) else None
    position = 0
    for _ in range(_PLAIN_DEPTH):
        if position + 2 > size or data[position] != 0x30:
            return None
        first = data[position + 1]
        position += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if not 1 <= count <= 3 or position + count > size or data[position] == 0:
                return None
            length = int.from_bytes(data[position : position + count], "big")
            position += count
            if length < 0x80:
                return None  # not the minimal length encoding
        if position + length != size:
            return None
    return data[position:]


def parse_request(data: bytes) -> OcspRequest:
    """Parses a DER OCSPRequest (RFC 6960 4.1.1); raises :class:`OcspMalformed` for
    anything else, and only that."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise OcspMalformed("request must be bytes")
    data = bytes(data)
    if len(data) > MAX_REQUEST_SIZE:
        raise OcspMalformed("request too large")
    _check_der(data)
    try:
        request = asn1_ocsp.OCSPRequest.load(data, strict=True)
        return _request_fields(request)
    except OcspMalformed:
        raise
    except Exception as exc:
        # asn1crypto reports malformed input with ValueError, TypeError, KeyError,
        # IndexError, OverflowError, ... depending on where parsing stops; the input is
        # untrusted, so every one of them means "malformed" (the fuzz tests hold this).
        raise OcspMalformed(f"malformed OCSP request: {type(exc).__name__}") from exc


# --------------------------------------------------------------------------- responses


class CertStatus(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


# RFC 5280 5.3.1 CRLReason values; 7 is not used.
_REASONS: Final = frozenset({0, 1, 2, 3, 4, 5, 6, 8, 9, 10})


@dataclass(frozen=True, slots=True)
class SingleStatus:
    """The answer for one CertID. Times are timezone-aware; fractions of seconds are
    dropped when encoded (RFC 5280 4.1.2.5.2 forbids them in GeneralizedTime)."""

    cert_id_der: bytes
    status: CertStatus
    this_update: datetime
    next_update: datetime | None
    revoked_at: datetime | None = None
    reason: int | None = None

    def __post_init__(self) -> None:
        for instant in (self.this_update, self.next_update, self.revoked_at):
            if instant is not None and instant.tzinfo is None:
                raise ValueError("times must be timezone-aware")
        if self.next_update is not None and not self.next_update > self.this_update:
            # RFC 5019 2.2.4: nextUpdate is later than thisUpdate.
            raise ValueError("next_update must be later than this_update")
        if self.status is CertStatus.REVOKED:
            if self.revoked_at is None:
                raise ValueError("a revoked status needs revoked_at")
            if self.reason is not None and self.reason not in _REASONS:
                raise ValueError(f"{self.reason} is not a CRLReason (RFC 5280 5.3.1)")
        elif self.revoked_at is not None or self.reason is not None:
            raise ValueError("revoked_at and reason belong to a revoked status only")
        if len(self.cert_id_der) < 2 or self.cert_id_der[0] != 0x30:
            raise ValueError("cert_id_der must be a DER CertID")
        _, _, end = der.read_tlv(self.cert_id_der)
        if end != len(self.cert_id_der):
            raise ValueError("cert_id_der must be exactly one CertID")


@lru_cache(maxsize=1024)
def _generalized_time(instant: datetime) -> bytes:
    """GeneralizedTime YYYYMMDDHHMMSSZ (RFC 6960 4.2.2.1 via RFC 5280 4.1.2.5.2)."""
    utc = instant.astimezone(UTC)
    text = (
        f"{utc.year:04d}{utc.month:02d}{utc.day:02d}{utc.hour:02d}{utc.minute:02d}{utc.second:02d}Z"
    )
    return der.tlv(0x18, text.encode("ascii"))


def _single_response(status: SingleStatus) -> bytes:
    if status.status is CertStatus.GOOD:
        cert_status = _GOOD
    elif status.status is CertStatus.UNKNOWN:
        cert_status = _UNKNOWN
    else:
        assert status.revoked_at is not None  # checked in SingleStatus
        revoked_info = _generalized_time(status.revoked_at)
        if status.reason:
            # RFC 5280 5.3.1: reason code unspecified (0) is expressed by leaving it out.
            revoked_info += der.tlv(0xA0, der.tlv(0x0A, bytes((status.reason,))))
        cert_status = der.tlv(0xA1, revoked_info)  # [1] IMPLICIT RevokedInfo
    parts = [status.cert_id_der, cert_status, _generalized_time(status.this_update)]
    if status.next_update is not None:
        # RFC 5019 2.2.4 requires nextUpdate; it stays optional here for callers that
        # answer with fresh-at-request-time data (RFC 6960 4.2.2.1).
        parts.append(der.tlv(0xA0, _generalized_time(status.next_update)))
    return der.sequence(*parts)


@lru_cache(maxsize=16)
def _responder_id(key_id: bytes) -> bytes:
    # ResponderID byKey [2] EXPLICIT KeyHash: the SHA-1 of the responder's public key
    # bits (RFC 6960 4.2.1); RFC 5019 2.2.3 prefers it to byName (smaller).
    if len(key_id) != 20:
        raise ValueError("responder_key_id must be a 20-octet SHA-1 key hash")
    return der.tlv(0xA2, der.octet_string(key_id))


@lru_cache(maxsize=16)
def _signer_key_hash(public_key_der: bytes) -> bytes:
    return key_identifier(public_key_der)


@lru_cache(maxsize=16)
def _certs_field(certificate: bytes, public_key_der: bytes) -> bytes:
    """certs [0] EXPLICIT SEQUENCE OF Certificate with the responder certificate, after
    checking that it certifies the signing key (else clients reject every response)."""
    try:
        parsed = asn1_x509.Certificate.load(certificate, strict=True)
        spki = bytes(parsed["tbs_certificate"]["subject_public_key_info"].dump())
    except Exception as exc:  # asn1crypto raises several types for bad DER
        raise ValueError("responder_certificate is not a DER certificate") from exc
    if spki != public_key_der:
        raise ValueError("responder_certificate does not certify the signer's key")
    return der.tlv(0xA0, der.sequence(certificate))


def _nonce_extensions(nonce: bytes) -> bytes:
    if not _NONCE_MIN <= len(nonce) <= _NONCE_MAX:
        raise ValueError("nonce must be 1 to 32 octets (RFC 8954 2.1)")
    # responseExtensions [1] EXPLICIT Extensions: the nonce echoed, non-critical
    # (RFC 6960 4.4.1, RFC 8954 2.1).
    nonce_extension = der.sequence(_OID_NONCE_DER, der.octet_string(der.octet_string(nonce)))
    return der.tlv(0xA1, der.sequence(nonce_extension))


def build_response(
    signer: Signer,
    *,
    responder_key_id: bytes,
    responder_certificate: bytes | None,
    produced_at: datetime,
    statuses: Sequence[SingleStatus],
    nonce: bytes | None = None,
) -> bytes:
    """A successful OCSPResponse carrying a signed BasicOCSPResponse (RFC 6960 4.2.1).

    ``signer`` holds the responder key (the delegated responder's or the CA's own),
    ``responder_key_id`` is the SHA-1 hash of its public key bits (its SKI), and
    ``responder_certificate`` the delegated responder certificate to include (None when the
    CA signs itself). ``nonce`` is echoed from the request.
    """
    if not statuses:
        raise ValueError("a response answers at least one CertID")
    if produced_at.tzinfo is None:
        raise ValueError("produced_at must be timezone-aware")
    public_key_der = signer.public_key_der
    if _signer_key_hash(public_key_der) != responder_key_id:
        raise ValueError("responder_key_id is not the hash of the signer's public key")
    tbs_parts = [
        _responder_id(responder_key_id),
        _generalized_time(produced_at),
        der.sequence(*(_single_response(status) for status in statuses)),
    ]
    if nonce is not None:
        tbs_parts.append(_nonce_extensions(nonce))
    # version [0] DEFAULT v1 is omitted, as DER requires for default values.
    tbs = der.sequence(*tbs_parts)
    basic_parts = [tbs, signer.signature_algorithm, der.bit_string(signer.sign(tbs))]
    if responder_certificate is not None:
        basic_parts.append(_certs_field(responder_certificate, public_key_der))
    basic = der.sequence(*basic_parts)
    response_bytes = der.sequence(_OID_BASIC_RESPONSE_DER, der.octet_string(basic))
    return der.sequence(_STATUS_SUCCESSFUL, der.tlv(0xA0, response_bytes))


_ERROR_STATUSES: Final = {
    # RFC 6960 4.2.1 OCSPResponseStatus; 4 is not used. Unsuccessful responses carry no
    # responseBytes and are not signed (RFC 6960 2.3).
    "malformed_request": 1,
    "internal_error": 2,
    "try_later": 3,
    "sig_required": 5,
    "unauthorized": 6,
}
_ERROR_RESPONSES: Final = {
    name: der.sequence(der.tlv(0x0A, bytes((code,)))) for name, code in _ERROR_STATUSES.items()
}


def error_response(status: str) -> bytes:
    """The constant, unsigned OCSPResponse for an error status: ``"malformed_request"``,
    ``"internal_error"``, ``"try_later"``, ``"sig_required"`` or ``"unauthorized"``."""
    try:
        return _ERROR_RESPONSES[status]
    except KeyError:
        raise ValueError(f"unknown OCSP error status {status!r}") from None
