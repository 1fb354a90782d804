"""Minimal DER encoding and reading for the hot paths that assemble pre-encoded pieces.

Only what certificate assembly needs; anything that is built once (extensions, names of
CAs) is encoded with asn1crypto instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

__all__ = [
    "bit_string",
    "ia5_string",
    "integer",
    "octet_string",
    "read_tlv",
    "sequence",
    "spki_key_bits",
    "tlv",
    "utf8_string",
    "x509_time",
]

_SEQUENCE = 0x30
_SET = 0x31
_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_UTF8_STRING = 0x0C
_IA5_STRING = 0x16
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    encoded = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(encoded),)) + encoded


def tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + _length(len(value)) + value


def sequence(*items: bytes) -> bytes:
    return tlv(_SEQUENCE, b"".join(items))


def set_of(*items: bytes) -> bytes:
    # DER orders SET OF elements by their encodings (X.690 11.6).
    return tlv(_SET, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative integers are supported")
    return tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def octet_string(value: bytes) -> bytes:
    return tlv(_OCTET_STRING, value)


def bit_string(value: bytes) -> bytes:
    return tlv(_BIT_STRING, b"\x00" + value)


def utf8_string(value: str) -> bytes:
    return tlv(_UTF8_STRING, value.encode("utf-8"))


def ia5_string(value: str) -> bytes:
    return tlv(_IA5_STRING, value.encode("ascii"))


@lru_cache(maxsize=256)
def x509_time(instant: datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    utc = instant.astimezone(UTC)
    if utc.microsecond:
        raise ValueError("certificate times carry whole seconds only")
    if 1950 <= utc.year < 2050:
        return tlv(_UTC_TIME, utc.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return tlv(_GENERALIZED_TIME, utc.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """Returns (tag, start of value, end of value) of the element at ``offset``."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[offset]
    first = data[offset + 1]
    position = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or position + count > len(data):
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    end = position + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, position, end


def spki_key_bits(spki_der: bytes) -> bytes:
    """The subjectPublicKey bits of a SubjectPublicKeyInfo (input of RFC 5280 key IDs)."""
    tag, start, _ = read_tlv(spki_der)
    if tag != _SEQUENCE:
        raise ValueError("SubjectPublicKeyInfo is not a SEQUENCE")
    _, _, algorithm_end = read_tlv(spki_der, start)
    tag, bits_start, bits_end = read_tlv(spki_der, algorithm_end)
    if tag != _BIT_STRING or bits_start == bits_end:
        raise ValueError("SubjectPublicKeyInfo has no BIT STRING")
    return spki_der[bits_start + 1 : bits_end]
