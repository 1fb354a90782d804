"""The hand-written DER encoder/reader, checked against asn1crypto and cryptography."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from asn1crypto import core
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ca_service.pki import der

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, database=None)
JST = timezone(timedelta(hours=9))


class _Integers(core.SequenceOf):
    _child_spec = core.Integer


class _OctetStrings(core.SequenceOf):
    _child_spec = core.OctetString


class _OctetStringSet(core.SetOf):
    _child_spec = core.OctetString


# Lengths around every change of the length encoding (short form, 1-, 2-, 3-, 4-octet long form).
BOUNDARY_SIZES = [0, 1, 127, 128, 255, 256, 65_535, 65_536, (1 << 24) - 1, 1 << 24]


# --------------------------------------------------------------------------- primitives


@PROPERTY_SETTINGS
@given(st.one_of(st.integers(0, 1 << 64), st.integers(0, 1 << 4096)))
@example(0)
@example(127)
@example(128)
@example(255)
@example(256)
@example((1 << 159) - 1)
def test_integer(value: int) -> None:
    assert der.integer(value) == core.Integer(value).dump()


@pytest.mark.parametrize("value", [-1, -128, -(1 << 100)])
def test_negative_integer_rejected(value: int) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        der.integer(value)


@PROPERTY_SETTINGS
@given(st.binary(max_size=1000))
def test_octet_string(value: bytes) -> None:
    assert der.octet_string(value) == core.OctetString(value).dump()


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_octet_string_length_forms(size: int) -> None:
    value = bytes(size)
    assert der.octet_string(value) == core.OctetString(value).dump()


@PROPERTY_SETTINGS
@given(st.binary(max_size=600))
def test_bit_string(value: bytes) -> None:
    assert der.bit_string(value) == core.OctetBitString(value).dump()


@PROPERTY_SETTINGS
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
@example("株式会社サンプル")
@example("")
def test_utf8_string(value: str) -> None:
    assert der.utf8_string(value) == core.UTF8String(value).dump()


@PROPERTY_SETTINGS
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=300))
def test_ia5_string(value: str) -> None:
    assert der.ia5_string(value) == core.IA5String(value).dump()


def test_ia5_string_rejects_non_ascii() -> None:
    with pytest.raises(ValueError):
        der.ia5_string("https://ca.example.jp/ユーザー")


@PROPERTY_SETTINGS
@given(st.integers(0, 255), st.binary(max_size=400))
def test_tlv_header(tag: int, value: bytes) -> None:
    # Same length octets as asn1crypto writes for any value; only the tag differs.
    encoded = der.tlv(tag, value)
    assert encoded[0] == tag
    assert encoded[1:] == core.OctetString(value).dump()[1:]


# --------------------------------------------------------------------------- constructed


@PROPERTY_SETTINGS
@given(st.lists(st.integers(0, 1 << 130), max_size=40))
def test_sequence_of_integers(values: list[int]) -> None:
    assert der.sequence(*(der.integer(v) for v in values)) == _Integers(values).dump()


@PROPERTY_SETTINGS
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_sequence_of_octet_strings(values: list[bytes]) -> None:
    assert der.sequence(*(der.octet_string(v) for v in values)) == _OctetStrings(values).dump()


@PROPERTY_SETTINGS
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_set_of_is_sorted_like_asn1crypto(values: list[bytes]) -> None:
    assert der.set_of(*(der.octet_string(v) for v in values)) == _OctetStringSet(values).dump()


def test_empty_sequence() -> None:
    assert der.sequence() == b"\x30\x00"


# --------------------------------------------------------------------------- times


def _whole_second_datetimes(start: datetime, end: datetime) -> st.SearchStrategy[datetime]:
    return st.datetimes(min_value=start, max_value=end, timezones=st.sampled_from([UTC, JST])).map(
        lambda dt: dt.replace(microsecond=0)
    )


@PROPERTY_SETTINGS
@given(_whole_second_datetimes(datetime(1950, 1, 2), datetime(2049, 12, 31)))
def test_utc_time_1950_to_2049(instant: datetime) -> None:
    assert der.x509_time(instant) == core.UTCTime(instant.astimezone(UTC)).dump()


@PROPERTY_SETTINGS
@given(_whole_second_datetimes(datetime(2050, 1, 2), datetime(9999, 12, 30)))
def test_generalized_time_from_2050(instant: datetime) -> None:
    assert der.x509_time(instant) == core.GeneralizedTime(instant.astimezone(UTC)).dump()


@PROPERTY_SETTINGS
@given(_whole_second_datetimes(datetime(1000, 1, 2), datetime(1949, 12, 30)))
def test_generalized_time_before_1950(instant: datetime) -> None:
    assert der.x509_time(instant) == core.GeneralizedTime(instant.astimezone(UTC)).dump()


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(1949, 12, 31, 23, 59, 59, tzinfo=UTC), b"\x18\x0f19491231235959Z"),
        (datetime(1950, 1, 1, 0, 0, 0, tzinfo=UTC), b"\x17\x0d500101000000Z"),
        (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), b"\x17\x0d491231235959Z"),
        (datetime(2050, 1, 1, 0, 0, 0, tzinfo=UTC), b"\x18\x0f20500101000000Z"),
        # the year is decided in UTC: 08:59:59 JST on 2050-01-01 is still 2049 in UTC
        (datetime(2050, 1, 1, 8, 59, 59, tzinfo=JST), b"\x17\x0d491231235959Z"),
        (datetime(2050, 1, 1, 9, 0, 0, tzinfo=JST), b"\x18\x0f20500101000000Z"),
        (datetime(2027, 11, 21, 23, 59, 59, tzinfo=JST), b"\x17\x0d271121145959Z"),
    ],
)
def test_x509_time_boundaries(instant: datetime, expected: bytes) -> None:
    assert der.x509_time(instant) == expected


def test_x509_time_rejects_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        der.x509_time(datetime(2026, 11, 21, 12, 0, 0))


def test_x509_time_rejects_fractional_seconds() -> None:
    with pytest.raises(ValueError, match="whole seconds"):
        der.x509_time(datetime(2026, 11, 21, 12, 0, 0, 1, tzinfo=UTC))


# --------------------------------------------------------------------------- read_tlv


@PROPERTY_SETTINGS
@given(st.integers(0, 255), st.binary(max_size=700), st.binary(max_size=20), st.binary(max_size=20))
def test_read_tlv_round_trip(tag: int, value: bytes, before: bytes, after: bytes) -> None:
    element = der.tlv(tag, value)
    data = before + element + after
    read_tag, start, end = der.read_tlv(data, len(before))
    assert read_tag == tag
    assert data[start:end] == value
    assert end == len(before) + len(element)


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_read_tlv_length_forms(size: int) -> None:
    element = der.octet_string(bytes(size))
    tag, start, end = der.read_tlv(element)
    assert (tag, end - start, end) == (0x04, size, len(element))


@PROPERTY_SETTINGS
@given(st.integers(0, 255), st.binary(max_size=300), st.data())
def test_read_tlv_rejects_truncated(tag: int, value: bytes, data: st.DataObject) -> None:
    element = der.tlv(tag, value)
    cut = data.draw(st.integers(0, len(element) - 1))
    with pytest.raises(ValueError):
        der.read_tlv(element[:cut])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x04",
        b"\x04\x01",
        b"\x04\x81",  # long form without its length octet
        b"\x04\x82\x01",  # long form cut inside the length
        b"\x04\x81\x80" + bytes(0x7F),  # one octet short
        b"\x04\x80",  # indefinite length: not DER
        b"\x04\x85\x00\x00\x00\x00\x01\x00",  # more length octets than supported
        b"\x30\x84\xff\xff\xff\xff",  # absurd length
    ],
)
def test_read_tlv_rejects_malformed(data: bytes) -> None:
    with pytest.raises(ValueError):
        der.read_tlv(data)


def test_read_tlv_offset_past_end() -> None:
    with pytest.raises(ValueError):
        der.read_tlv(b"\x04\x00", 1)
    with pytest.raises(ValueError):
        der.read_tlv(b"\x04\x00", 5)


# --------------------------------------------------------------------------- spki_key_bits

KEYS: dict[str, Callable[[], Any]] = {
    "P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "P-384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "P-521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "RSA-2048": lambda: rsa.generate_private_key(65537, 2048),
    "Ed25519": ed25519.Ed25519PrivateKey.generate,
    "Ed448": ed448.Ed448PrivateKey.generate,
    "X25519": x25519.X25519PrivateKey.generate,
}


def _key_bits(public_key: Any) -> bytes:
    """The subjectPublicKey contents as cryptography serialises them (RFC 5480, 3279, 8410)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    return bytes(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))


@pytest.mark.parametrize("kind", list(KEYS))
def test_spki_key_bits(kind: str) -> None:
    public_key = KEYS[kind]().public_key()
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert der.spki_key_bits(spki) == _key_bits(public_key)


def test_spki_key_bits_ec_compressed_point() -> None:
    # The function returns whatever the BIT STRING holds; compressed points included.
    public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    compressed = public_key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    spki = der.sequence(
        der.sequence(
            bytes.fromhex("06072a8648ce3d0201"),  # id-ecPublicKey
            bytes.fromhex("06082a8648ce3d030107"),  # prime256v1
        ),
        der.bit_string(compressed),
    )
    assert der.spki_key_bits(spki) == compressed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (der.octet_string(b"\x00" * 4), "not a SEQUENCE"),
        (der.sequence(der.sequence()), "truncated"),
        (der.sequence(der.sequence(), der.octet_string(b"\x00\x01")), "no BIT STRING"),
        (der.sequence(der.sequence(), der.tlv(0x03, b"")), "no BIT STRING"),
    ],
)
def test_spki_key_bits_rejects_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        der.spki_key_bits(data)
