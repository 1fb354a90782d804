"""Who is calling on a ``card`` route: an identity card's certificate (SPEC D2; in the
original, the signing certificate of the individual number card, JPKI 署名用電子証明書)
checked against a second, separate set of trust anchors, and the holder's basic attributes
(name, address, date of birth, sex) read from it. Pure: the certificate, the time and the
card CAs' revocation view are passed in.

Checks, each with its own refusal (and Japanese page): not this CA's own certificate (this
CA's certificates are never identity certificates), issued by a configured card CA (chain
verified by ``cryptography``'s X.509 verifier at the request's time), within its validity,
key usage allowing signatures, the configured attributes present, and not revoked by that
CA's CRL, which must be current (fail closed). A wrong PIN never reaches us: the card refuses
to sign, and the TLS handshake has no client certificate proof.

Where the attributes sit is configurable (``GATEWAY_CARD_ATTRIBUTES``); the default follows
the JPKI signing certificate profile: subjectAltName otherName entries under
1.2.392.200149.8.5.5 — name .1, sex .3, date of birth .4 (``EYYYYMMDD``: an era digit and
the Gregorian date), address .5, UTF8String (README, "Identity card mode" cites the source).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509 import verification

from gateway.identity import Refusal, Refused

__all__ = [
    "ATTRIBUTES",
    "DEFAULT_CARD_ATTRIBUTES",
    "AttributeSource",
    "CardHolder",
    "CardRevocationView",
    "CardTrust",
    "parse_card_attributes",
]

# The holder's attributes passed upstream, in this order.
ATTRIBUTES = ("name", "address", "birth_date", "sex")

JPKI_PERSONAL_DATA = "1.2.392.200149.8.5.5"
DEFAULT_CARD_ATTRIBUTES = (
    f"name=san:{JPKI_PERSONAL_DATA}.1, address=san:{JPKI_PERSONAL_DATA}.5, "
    f"birth_date=san:{JPKI_PERSONAL_DATA}.4, sex=san:{JPKI_PERSONAL_DATA}.3"
)

_DATE = re.compile(r"^[0-9]?([0-9]{4})([0-9]{2})([0-9]{2})$")


@dataclass(frozen=True, slots=True)
class AttributeSource:
    """``san``: a subjectAltName otherName with this type OID; ``subject``: a subject
    attribute with this OID."""

    place: str
    oid: x509.ObjectIdentifier


def parse_card_attributes(text: str) -> dict[str, AttributeSource]:
    """``name=san:OID, address=subject:OID, ...``: every attribute of :data:`ATTRIBUTES`
    must be placed. Raises ``ValueError``."""
    placed: dict[str, AttributeSource] = {}
    for entry in text.replace("\n", ",").split(","):
        if not entry.strip():
            continue
        attribute, _, where = entry.strip().partition("=")
        place, _, oid = where.strip().partition(":")
        attribute = attribute.strip()
        if attribute not in ATTRIBUTES or place not in ("san", "subject"):
            raise ValueError(
                f"an attribute is NAME=san:OID or NAME=subject:OID with NAME one of "
                f"{', '.join(ATTRIBUTES)}, not {entry.strip()!r}"
            )
        try:
            placed[attribute] = AttributeSource(place, x509.ObjectIdentifier(oid.strip()))
        except ValueError:
            raise ValueError(f"not an OID: {oid.strip()!r}") from None
    missing = [name for name in ATTRIBUTES if name not in placed]
    if missing:
        raise ValueError(f"no place given for {', '.join(missing)}")
    return placed


class CardRevocationView(Protocol):
    def card_revoked(self, issuer: x509.Name, serial: int) -> bool | None:
        """True when revoked, False when not; None when that CA's CRL is not current."""


@dataclass(frozen=True, slots=True)
class CardHolder:
    name: str
    address: str
    birth_date: str  # YYYY-MM-DD when the certificate's value is a date, else as it is
    sex: str  # the certificate's code as it is (JPKI: a digit)
    fingerprint_sha256: str
    serial: int
    issuer: x509.Name

    def attributes(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ATTRIBUTES}


@dataclass(frozen=True, slots=True)
class _Parsed:
    certificate: x509.Certificate
    attributes: dict[str, str] | None  # None: one is missing or unreadable
    signing: bool
    fingerprint: str


def _text(value: bytes) -> str | None:
    """An otherName's value: a DER string (UTF8String in the JPKI profile)."""
    try:
        parsed = core.Asn1Value.load(value, strict=True)
        native = parsed.native
    except (ValueError, TypeError):
        return None
    return native if isinstance(native, str) else None


def _read(
    certificate: x509.Certificate, sources: Mapping[str, AttributeSource]
) -> dict[str, str] | None:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        other_names = san.get_values_for_type(x509.OtherName)
    except x509.ExtensionNotFound:
        other_names = []
    found: dict[str, str] = {}
    for attribute, source in sources.items():
        value: str | None = None
        if source.place == "san":
            for other in other_names:
                if other.type_id == source.oid:
                    value = _text(other.value)
                    break
        else:
            values = certificate.subject.get_attributes_for_oid(source.oid)
            value = str(values[0].value) if values else None
        if value is None or not value.strip():
            return None
        found[attribute] = value
    birth = _DATE.match(found["birth_date"])
    if birth:
        found["birth_date"] = "-".join(birth.groups())
    return found


def _signing(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return bool(usage.digital_signature)


class CardTrust:
    """The identity card CAs (trust anchors) and where the attributes sit."""

    def __init__(
        self,
        anchors: Sequence[x509.Certificate],
        attributes: Mapping[str, AttributeSource],
        *,
        our_issuer_der: bytes,
    ) -> None:
        if not anchors:
            raise ValueError("no identity card CA certificate given")
        self._our_issuer = x509.load_der_x509_certificate(our_issuer_der)
        ours = self._our_issuer.public_key()
        for anchor in anchors:
            if anchor.public_key() == ours or anchor.subject == self._our_issuer.subject:
                raise ValueError("this CA cannot be an identity card CA")
        self.anchors = tuple(anchors)
        self._subjects = frozenset(anchor.subject for anchor in anchors)
        self._store = verification.Store(list(anchors))
        self._attributes = dict(attributes)
        self._parse = lru_cache(maxsize=4096)(self._parse_uncached)
        # (certificate, minute) → its chain verified: the anchors' validity is checked at
        # that granularity, the certificate's own on every request.
        self._chains: dict[tuple[bytes, int], bool] = {}

    def _parse_uncached(self, der: bytes) -> _Parsed | None:
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            return None
        return _Parsed(
            certificate,
            _read(certificate, self._attributes),
            _signing(certificate),
            hashlib.sha256(der).hexdigest(),
        )

    def _chain_verified(self, der: bytes, now: datetime) -> bool:
        key = (der, int(now.timestamp()) // 60)
        verified = self._chains.get(key)
        if verified is None:
            if len(self._chains) > 4096:
                self._chains.clear()
            verified = self._chains[key] = self._verify_chain(der, now)
        return verified

    def _verify_chain(self, der: bytes, now: datetime) -> bool:
        parsed = self._parse(der)
        assert parsed is not None
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                # The card profile, not the web's, governs the certificate itself: its key
                # usage and attributes are checked here.
                ee_policy=verification.ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        try:
            verifier.verify(parsed.certificate, [])
        except verification.VerificationError:
            return False
        return True

    def _ours(self, certificate: x509.Certificate) -> bool:
        try:
            certificate.verify_directly_issued_by(self._our_issuer)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def issued(self, der: bytes) -> bool:
        """Whether a card CA's name and signature are on ``der`` (to tell a card holder on a
        user route that this certificate is the wrong one)."""
        parsed = self._parse(der)
        if parsed is None or parsed.certificate.issuer not in self._subjects:
            return False
        for anchor in self.anchors:
            if anchor.subject == parsed.certificate.issuer:
                try:
                    parsed.certificate.verify_directly_issued_by(anchor)
                    return True
                except (ValueError, TypeError, InvalidSignature):
                    continue
        return False

    def verify(self, der: bytes, *, now: datetime, revocations: CardRevocationView) -> CardHolder:
        """The holder; raises :class:`Refused` saying why the certificate is not taken."""
        parsed = self._parse(der)
        if parsed is None:
            raise Refused(Refusal.MALFORMED)
        certificate = parsed.certificate
        if certificate.issuer not in self._subjects:
            if self._ours(certificate):
                raise Refused(Refusal.OUR_CERTIFICATE_ON_CARD_ROUTE)
            raise Refused(Refusal.NOT_A_CARD)
        if now < certificate.not_valid_before_utc:
            raise Refused(Refusal.CARD_NOT_YET_VALID)
        if now > certificate.not_valid_after_utc:
            raise Refused(Refusal.CARD_EXPIRED)
        if not self._chain_verified(der, now):
            raise Refused(Refusal.NOT_A_CARD)
        if not parsed.signing:
            raise Refused(Refusal.CARD_NOT_FOR_SIGNING)
        if parsed.attributes is None:
            raise Refused(Refusal.CARD_ATTRIBUTES_MISSING)
        revoked = revocations.card_revoked(certificate.issuer, certificate.serial_number)
        if revoked is None:
            raise Refused(Refusal.CARD_STALE)
        if revoked:
            raise Refused(Refusal.CARD_REVOKED)
        return CardHolder(
            **parsed.attributes,
            fingerprint_sha256=parsed.fingerprint,
            serial=certificate.serial_number,
            issuer=certificate.issuer,
        )
