"""Hostile input for the OCSP request parser (SPEC F2): whatever arrives, parse_request
returns a consistent request or raises OcspMalformed, never anything else, quickly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ca_service.pki import der
from ca_service.pki.certificates import key_identifier, name_der
from ca_service.pki.ocsp import (
    MAX_CERT_IDS,
    MAX_REQUEST_SIZE,
    CertStatus,
    OcspMalformed,
    OcspRequest,
    SingleStatus,
    build_response,
    parse_request,
)
from ca_service.pki.signer import SoftwareSigner

# Per call; the slower of two tries must stay under it, so that one scheduler hiccup on a
# busy machine does not fail the run while a real slow path still does.
CALL_LIMIT = 0.050
NOW = datetime(2026, 11, 21, 1, 0, 0, tzinfo=UTC)

DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
HASH_OIDS = {
    "sha1": bytes.fromhex("06052b0e03021a"),
    "sha256": bytes.fromhex("0609608648016503040201"),
    "sha384": bytes.fromhex("0609608648016503040202"),
    "sha512": bytes.fromhex("0609608648016503040203"),
    "md5": bytes.fromhex("06082a864886f70d0205"),
    "sha224": bytes.fromhex("0609608648016503040204"),
    "sha3-256": bytes.fromhex("0609608648016503040208"),
    "nonsense": bytes.fromhex("06032a0304"),
}
OID_NONCE = bytes.fromhex("06092b0601050507300102")
OID_ACCEPTABLE_RESPONSES = bytes.fromhex("06092b0601050507300104")
OID_BASIC = bytes.fromhex("06092b0601050507300101")
OID_UNKNOWN = bytes.fromhex("060a2b060104018237ff7f01")
NULL = b"\x05\x00"
TRUE = b"\x01\x01\xff"

RESPONDER_KEY = ec.generate_private_key(ec.SECP256R1())
RESPONDER = SoftwareSigner(RESPONDER_KEY)
RESPONDER_KEY_ID = key_identifier(RESPONDER.public_key_der)


def _self_signed() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "requestor")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(RESPONDER_KEY.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(RESPONDER_KEY, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


# --------------------------------------------------------------------------- checks


def timed_parse(data: bytes) -> OcspRequest | OcspMalformed:
    """parse_request's result or its OcspMalformed; any other exception fails the test."""
    elapsed = []
    result: OcspRequest | OcspMalformed
    for _ in range(2):
        start = time.perf_counter()
        try:
            result = parse_request(data)
        except OcspMalformed as exc:
            result = exc
        elapsed.append(time.perf_counter() - start)
        if elapsed[-1] < CALL_LIMIT:
            break
    assert min(elapsed) < CALL_LIMIT, f"parse_request took {min(elapsed) * 1e3:.1f} ms"
    return result


def assert_consistent(data: bytes, request: OcspRequest) -> None:
    """What a caller may rely on for every request parse_request returns."""
    assert isinstance(request, OcspRequest)
    assert 1 <= len(request.cert_ids) <= MAX_CERT_IDS
    for cert_id in request.cert_ids:
        size = DIGEST_SIZES[cert_id.hash_algorithm]
        assert len(cert_id.issuer_name_hash) == size
        assert len(cert_id.issuer_key_hash) == size
        assert cert_id.der in data
        parsed = asn1_ocsp.CertId.load(cert_id.der, strict=True)
        assert parsed["hash_algorithm"]["algorithm"].native == cert_id.hash_algorithm
        assert parsed["issuer_name_hash"].native == cert_id.issuer_name_hash
        assert parsed["issuer_key_hash"].native == cert_id.issuer_key_hash
        assert parsed["serial_number"].native == cert_id.serial
        assert parsed.dump(force=True) == cert_id.der  # canonical DER, safe to echo
        assert len(signed_integer(cert_id.serial)) - 2 <= 20  # RFC 5280 4.1.2.2
    if request.nonce is not None:
        assert 1 <= len(request.nonce) <= 32
        assert der.octet_string(der.octet_string(request.nonce)) in data


def check(data: bytes) -> OcspRequest | None:
    result = timed_parse(data)
    if isinstance(result, OcspMalformed):
        return None
    assert_consistent(data, result)
    return result


def answer_unknown(request: OcspRequest) -> ocsp.OCSPResponse:
    """Builds an all-"unknown" response and checks that cryptography reads it back."""
    statuses = [
        SingleStatus(cert_id.der, CertStatus.UNKNOWN, NOW, NOW + timedelta(hours=1))
        for cert_id in request.cert_ids
    ]
    data = build_response(
        RESPONDER,
        responder_key_id=RESPONDER_KEY_ID,
        responder_certificate=None,
        produced_at=NOW,
        statuses=statuses,
        nonce=request.nonce,
    )
    response = ocsp.load_der_ocsp_response(data)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    singles = list(response.responses)
    assert len(singles) == len(request.cert_ids)
    for single, cert_id in zip(singles, request.cert_ids, strict=True):
        assert single.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
        assert single.serial_number == cert_id.serial
        assert single.issuer_name_hash == cert_id.issuer_name_hash
        assert single.issuer_key_hash == cert_id.issuer_key_hash
        assert single.hash_algorithm.name == cert_id.hash_algorithm
    if request.nonce is None:
        assert len(response.extensions) == 0
    else:
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == (
            request.nonce
        )
    signature_hash = response.signature_hash_algorithm
    assert signature_hash is not None
    RESPONDER_KEY.public_key().verify(
        response.signature, response.tbs_response_bytes, ec.ECDSA(signature_hash)
    )
    return response


# --------------------------------------------------------------------------- request parts


def signed_integer(value: int) -> bytes:
    length = (value + (value < 0)).bit_length() // 8 + 1
    return der.tlv(0x02, value.to_bytes(length, "big", signed=True))


def cert_id(algorithm: bytes, name_hash: bytes, key_hash: bytes, serial: int) -> bytes:
    return der.sequence(
        algorithm, der.octet_string(name_hash), der.octet_string(key_hash), signed_integer(serial)
    )


def extension(oid: bytes, value: bytes, *, critical: bool = False) -> bytes:
    return der.sequence(oid, *([TRUE] if critical else []), der.octet_string(value))


def request(
    cert_ids: list[bytes],
    extensions: list[bytes] | None = None,
    *,
    prefix: tuple[bytes, ...] = (),
    signature: bytes | None = None,
) -> bytes:
    tbs = [*prefix, der.sequence(*(der.sequence(c) for c in cert_ids))]
    if extensions:
        tbs.append(der.tlv(0xA2, der.sequence(*extensions)))
    outer = [der.sequence(*tbs)]
    if signature is not None:
        outer.append(der.tlv(0xA0, signature))
    return der.sequence(*outer)


def _corpus() -> list[bytes]:
    """Valid requests of every shape the parser accepts; the seeds of the mutations."""
    seeds = []
    for algorithm in (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
        size = algorithm.digest_size
        for nonce in (None, b"\x07" * 16, b"\xff" * 32, b"\x00"):
            builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
                b"\x11" * size, b"\x22" * size, 0x4A3B2C1D0E0F10111213141516171819, algorithm
            )
            if nonce is not None:
                builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
            seeds.append(builder.build().public_bytes(Encoding.DER))
    sha1 = der.sequence(HASH_OIDS["sha1"], NULL)
    several = [cert_id(sha1, bytes([i]) * 20, b"\x33" * 20, 1000 + i) for i in range(4)]
    nonce = extension(OID_NONCE, der.octet_string(b"\x05" * 16))
    seeds.append(request(several, [nonce]))
    seeds.append(
        request(
            several[:1],
            [nonce, extension(OID_ACCEPTABLE_RESPONSES, der.sequence(OID_BASIC))],
            prefix=(der.tlv(0xA1, der.tlv(0xA4, name_der(organization="o", common_name="c"))),),
        )
    )
    signature = der.sequence(
        RESPONDER.signature_algorithm,
        der.bit_string(RESPONDER.sign(b"tbs")),
        der.tlv(0xA0, der.sequence(_self_signed())),
    )
    seeds.append(request(several[1:3], [nonce], signature=signature))
    seeds.append(request(several[:2], [extension(OID_UNKNOWN, b"\x04\x00")]))
    for seed in seeds:
        assert check(seed) is not None, seed.hex()
    return seeds


CORPUS = _corpus()


# --------------------------------------------------------------------------- a DER tree


@dataclass
class Node:
    """One element; ``children`` for constructed ones, ``value`` for primitive ones."""

    tag: int
    value: bytes = b""
    children: list[Node] | None = None
    offset: int = 0  # where the element started in the parsed input
    end: int = 0

    def encode(self) -> bytes:
        if self.children is None:
            return der.tlv(self.tag, self.value)
        return der.tlv(self.tag, b"".join(child.encode() for child in self.children))

    def walk(self) -> list[Node]:
        nodes = [self]
        for child in self.children or ():
            nodes.extend(child.walk())
        return nodes


def parse_tree(data: bytes, offset: int = 0) -> Node:
    tag, start, end = der.read_tlv(data, offset)
    node = Node(tag, offset=offset, end=end)
    if tag & 0x20:
        node.children = []
        position = start
        while position < end:
            child = parse_tree(data, position)
            node.children.append(child)
            position = child.end
    else:
        node.value = data[start:end]
    return node


CORPUS_TREES = [parse_tree(seed) for seed in CORPUS]


@dataclass
class Mutation:
    name: str
    apply: Callable[[bytes, st.DataObject], bytes]
    counts: dict[str, int] = field(default_factory=dict)


def _bit_flip(data: bytes, draw: st.DataObject) -> bytes:
    if not data:
        return data
    position = draw.draw(st.integers(0, len(data) - 1))
    bit = draw.draw(st.integers(0, 7))
    mutated = bytearray(data)
    mutated[position] ^= 1 << bit
    return bytes(mutated)


def _truncate(data: bytes, draw: st.DataObject) -> bytes:
    return data[: draw.draw(st.integers(0, max(len(data) - 1, 0)))]


def _insert(data: bytes, draw: st.DataObject) -> bytes:
    position = draw.draw(st.integers(0, len(data)))
    return data[:position] + draw.draw(st.binary(min_size=1, max_size=8)) + data[position:]


def _delete(data: bytes, draw: st.DataObject) -> bytes:
    if not data:
        return data
    start = draw.draw(st.integers(0, len(data) - 1))
    return data[:start] + data[start + draw.draw(st.integers(1, 8)) :]


def _length_octet(data: bytes, draw: st.DataObject) -> bytes:
    """Corrupts the (first) length octet of one element."""
    try:
        nodes = parse_tree(data).walk()
    except (ValueError, RecursionError):  # not DER (any more): mutate the bytes
        return _bit_flip(data, draw)
    node = draw.draw(st.sampled_from(nodes))
    mutated = bytearray(data)
    mutated[node.offset + 1] = draw.draw(
        st.one_of(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xFF]), st.integers(0, 255))
    )
    return bytes(mutated)


def _duplicate_raw(data: bytes, draw: st.DataObject) -> bytes:
    """Repeats one element in place without fixing the enclosing lengths."""
    try:
        nodes = parse_tree(data).walk()
    except (ValueError, RecursionError):  # not DER (any more): mutate the bytes
        return _insert(data, draw)
    node = draw.draw(st.sampled_from(nodes))
    return data[: node.end] + data[node.offset : node.end] + data[node.end :]


def _structural(data: bytes, draw: st.DataObject) -> bytes:
    """Valid DER, wrong content: edits the tree and re-encodes every length."""
    try:
        tree = parse_tree(data)
    except (ValueError, RecursionError):  # not DER (any more): mutate the bytes
        return _bit_flip(data, draw)
    nodes = tree.walk()
    parents = [node for node in nodes if node.children]
    kind = draw.draw(
        st.sampled_from(["duplicate", "delete", "swap", "value", "tag", "integer", "graft"])
    )
    if kind in ("duplicate", "delete", "swap") and parents:
        parent = draw.draw(st.sampled_from(parents))
        assert parent.children is not None
        index = draw.draw(st.integers(0, len(parent.children) - 1))
        if kind == "duplicate":
            parent.children.insert(index, parse_tree(parent.children[index].encode()))
        elif kind == "delete":
            del parent.children[index]
        else:
            other = draw.draw(st.integers(0, len(parent.children) - 1))
            parent.children[index], parent.children[other] = (
                parent.children[other],
                parent.children[index],
            )
    elif kind == "value":
        leaves = [node for node in nodes if node.children is None]
        if leaves:
            draw.draw(st.sampled_from(leaves)).value = draw.draw(st.binary(max_size=40))
    elif kind == "tag":
        node = draw.draw(st.sampled_from(nodes))
        node.tag = draw.draw(st.integers(0, 255))
    elif kind == "integer":
        integers = [node for node in nodes if node.tag == 0x02]
        if integers:
            value = draw.draw(st.integers(-(2**200), 2**200))
            draw.draw(st.sampled_from(integers)).value = signed_integer(value)[2:]
    elif parents:  # graft: an element from any seed into any constructed element
        donor = draw.draw(st.sampled_from(draw.draw(st.sampled_from(CORPUS_TREES)).walk()))
        parent = draw.draw(st.sampled_from(parents))
        assert parent.children is not None
        position = draw.draw(st.integers(0, len(parent.children)))
        parent.children.insert(position, parse_tree(donor.encode()))
    return tree.encode()


MUTATIONS = {
    "bit flip": _bit_flip,
    "truncate": _truncate,
    "insert": _insert,
    "delete": _delete,
    "length octet": _length_octet,
    "duplicate raw": _duplicate_raw,
    "structural": _structural,
}


# --------------------------------------------------------------------------- properties


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,  # timed_parse bounds the call itself; generation time is not ours
        suppress_health_check=[HealthCheck.too_slow],
    )


@fuzz(500)
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    check(data)


@fuzz(300)
@given(st.binary(max_size=512).map(lambda tail: b"\x30" + tail))
def test_random_bytes_that_look_like_a_sequence(data: bytes) -> None:
    check(data)


@fuzz(1000)
@given(st.data())
def test_mutated_requests(data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(CORPUS))
    for _ in range(data.draw(st.integers(1, 3))):
        mutation = data.draw(st.sampled_from(sorted(MUTATIONS)))
        sample = MUTATIONS[mutation](sample, data)
    check(sample)


@dataclass(frozen=True)
class Generated:
    data: bytes
    faults: tuple[str, ...]
    serials: tuple[int, ...]
    nonce: bytes | None

    @property
    def valid(self) -> bool:
        return not self.faults


@dataclass
class Spec:
    """A request as parts: valid as drawn, then broken by named faults."""

    cert_ids: list[tuple[str, list[bytes], bytes, bytes, int]]
    nonce: bytes | None
    nonce_critical: bool
    unknown_extension: str  # "none", "plain"
    acceptable_responses: bool
    version: int | None
    requestor: bool
    raw_nonce: bytes | None = None
    duplicate_nonce: bool = False
    acceptable_other: bool = False

    def encode(self) -> bytes:
        cert_ids = [
            cert_id(der.sequence(HASH_OIDS[name], *parameters), name_hash, key_hash, serial)
            for name, parameters, name_hash, key_hash, serial in self.cert_ids
        ]
        extensions = []
        if self.nonce is not None or self.raw_nonce is not None:
            value = der.octet_string(self.nonce) if self.nonce is not None else self.raw_nonce
            assert value is not None
            extensions.append(extension(OID_NONCE, value, critical=self.nonce_critical))
            if self.duplicate_nonce:
                extensions.append(extensions[-1])
        if self.unknown_extension != "none":
            critical = self.unknown_extension == "critical"
            extensions.append(extension(OID_UNKNOWN, NULL, critical=critical))
        if self.acceptable_responses:
            types = [HASH_OIDS["nonsense"]] if self.acceptable_other else [OID_BASIC]
            extensions.append(extension(OID_ACCEPTABLE_RESPONSES, der.sequence(*types)))
        prefix = []
        if self.version is not None:
            prefix.append(der.tlv(0xA0, der.integer(self.version)))
        if self.requestor:
            prefix.append(der.tlv(0xA1, der.tlv(0x86, b"urn:requestor")))
        return request(cert_ids, extensions, prefix=tuple(prefix))


def _with_sizes(
    name: str, parameters: str, serial: int
) -> tuple[str, list[bytes], bytes, bytes, int]:
    size = DIGEST_SIZES[name]
    return name, [[], [NULL]][parameters == "null"], b"\x11" * size, b"\x22" * size, serial


# Strategies are built once: hypothesis validates every new strategy object, which would
# otherwise cost more than the parsing under test.
VALID_CERT_IDS = st.lists(
    st.builds(
        _with_sizes,
        st.sampled_from(sorted(DIGEST_SIZES)),
        st.sampled_from(["absent", "null"]),
        st.one_of(
            st.integers(1, 2**127),
            st.sampled_from([0, -1, 127, 128, 255, 2**159 - 1, -(2**159)]),
            st.integers(-(2**159), 2**159 - 1),
        ),
    ),
    min_size=1,
    max_size=4,
)
VALID_SPECS = st.builds(
    Spec,
    cert_ids=VALID_CERT_IDS,
    nonce=st.one_of(st.none(), st.binary(min_size=1, max_size=32)),
    nonce_critical=st.booleans(),
    unknown_extension=st.sampled_from(["none", "plain"]),
    acceptable_responses=st.booleans(),
    version=st.sampled_from([None, 0]),
    requestor=st.booleans(),
)


def _fault(spec: Spec, fault: str, draw: st.DrawFn) -> None:
    """Breaks ``spec`` in the one way named by ``fault``."""
    index = draw(st.integers(0, len(spec.cert_ids) - 1))
    name, parameters, name_hash, key_hash, serial = spec.cert_ids[index]
    if fault == "no CertID":
        spec.cert_ids = []
    elif fault == "too many CertIDs":
        spec.cert_ids = spec.cert_ids * (MAX_CERT_IDS // len(spec.cert_ids) + 1)
    elif fault == "unsupported hash":
        name = draw(st.sampled_from(["md5", "sha224", "sha3-256", "nonsense"]))
    elif fault == "hash parameters":
        parameters = [b"\x02\x01\x00"]
    elif fault == "hash size":
        size = DIGEST_SIZES.get(name, len(name_hash))
        wrong = st.binary(max_size=70).filter(lambda b: len(b) != size)
        if draw(st.booleans()):
            name_hash = draw(wrong)
        else:
            key_hash = draw(wrong)
    elif fault == "long serial":
        serial = draw(st.one_of(st.integers(2**159, 2**400), st.integers(-(2**400), -(2**159) - 1)))
    elif fault == "nonce size":
        spec.nonce = draw(st.one_of(st.just(b""), st.binary(min_size=33, max_size=80)))
    elif fault == "bare nonce":
        spec.nonce = None
        spec.raw_nonce = draw(st.binary(max_size=40).filter(lambda b: not b.startswith(b"\x04")))
    elif fault == "duplicate nonce":
        spec.nonce = spec.nonce or b"n"
        spec.duplicate_nonce = True
    elif fault == "critical unknown extension":
        spec.unknown_extension = "critical"
    elif fault == "no basic response type":
        spec.acceptable_responses = spec.acceptable_other = True
    elif fault == "version 2":
        spec.version = 1
    if spec.cert_ids:
        spec.cert_ids[index] = (name, parameters, name_hash, key_hash, serial)


FAULTS = [
    "no CertID",
    "too many CertIDs",
    "unsupported hash",
    "hash parameters",
    "hash size",
    "long serial",
    "nonce size",
    "bare nonce",
    "duplicate nonce",
    "critical unknown extension",
    "no basic response type",
    "version 2",
]
# "no CertID" last: the other faults edit a CertID.
FAULT_SETS: st.SearchStrategy[list[str]] = st.one_of(
    st.just([]),
    st.lists(st.sampled_from(FAULTS), min_size=1, max_size=2, unique=True).map(
        lambda faults: sorted(faults, key=lambda fault: fault == "no CertID")
    ),
)


@st.composite
def generated_requests(draw: st.DrawFn, valid_only: bool = False) -> Generated:
    """Well-formed DER, valid or broken in known ways (the oracle)."""
    spec = draw(VALID_SPECS)
    faults = [] if valid_only else draw(FAULT_SETS)
    for fault in faults:
        _fault(spec, fault, draw)
    serials = tuple(c[4] for c in spec.cert_ids)
    return Generated(spec.encode(), tuple(faults), serials, None if faults else spec.nonce)


@fuzz(800)
@given(generated_requests())
def test_generated_requests_match_the_oracle(generated: Generated) -> None:
    result = timed_parse(generated.data)
    if not generated.valid:
        assert isinstance(result, OcspMalformed), (generated.faults, generated.data.hex())
        return
    assert isinstance(result, OcspRequest), f"{result!r} for {generated.data.hex()}"
    assert_consistent(generated.data, result)
    assert tuple(c.serial for c in result.cert_ids) == generated.serials
    assert result.nonce == generated.nonce


@fuzz(400)
@given(
    st.one_of(generated_requests(valid_only=True).map(lambda g: g.data), st.sampled_from(CORPUS))
)
def test_any_parsed_request_can_be_answered(data: bytes) -> None:
    request = check(data)
    if request is not None:
        answer_unknown(request)


@fuzz(200)
@given(st.data())
def test_mutated_requests_that_parse_can_be_answered(data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(CORPUS))
    sample = _structural(sample, data)
    request = check(sample)
    if request is not None:
        answer_unknown(request)


# --------------------------------------------------------------------------- worst cases


def _flood(element: bytes, size: int = MAX_REQUEST_SIZE - 16) -> bytes:
    return der.sequence(element * (size // len(element)))


def _deep(levels: int) -> bytes:
    element = NULL
    for _ in range(levels):
        element = der.sequence(element)
    return element


SHA1 = der.sequence(HASH_OIDS["sha1"], NULL)
ONE_CERT_ID = cert_id(SHA1, b"\x11" * 20, b"\x22" * 20, 1)
WORST_CASES: dict[str, bytes] = {
    "64 KiB of NULLs": _flood(NULL),
    "64 KiB of empty SEQUENCEs": _flood(b"\x30\x00"),
    "64 KiB of CertIDs": request([ONE_CERT_ID] * 600),
    "64 KiB of extensions": request(
        [ONE_CERT_ID], [extension(OID_UNKNOWN + bytes([i % 100]), b"") for i in range(3000)]
    )[:MAX_REQUEST_SIZE],
    "60 KB OID": request([ONE_CERT_ID], [extension(der.tlv(6, b"\x81" * 60000 + b"\x01"), b"")]),
    "60 KB serial": request([cert_id(SHA1, b"\x11" * 20, b"\x22" * 20, 1 << (8 * 60000))]),
    "64 KB nonce": request([ONE_CERT_ID], [extension(OID_NONCE, der.octet_string(b"n" * 65000))]),
    "huge requestor name": request(
        [ONE_CERT_ID],
        prefix=(
            der.tlv(
                0xA1,
                der.tlv(
                    0xA4,
                    der.sequence(
                        *[der.set_of(der.sequence(b"\x06\x03\x55\x04\x03", der.utf8_string("x")))]
                        * 4000
                    ),
                ),
            ),
        ),
    ),
    "signed with many certificates": request(
        [ONE_CERT_ID],
        signature=der.sequence(
            RESPONDER.signature_algorithm,
            der.bit_string(b"\x30\x00"),
            der.tlv(0xA0, der.sequence(*[_self_signed()] * 100)),
        ),
    ),
    "deep nesting, definite lengths": der.sequence(der.sequence(_deep(30))),
    "deep nesting, indefinite lengths": b"\x30\x80" * 30000,
    "BER nesting inside an extension value": request(
        [ONE_CERT_ID],
        [
            extension(
                bytes.fromhex("06092b0601050507300108"),
                der.sequence(der.sequence(b"\x06\x03\x2a\x03\x04" + b"\x30\x80" * 20000)),
            )
        ],
    ),
}


@pytest.mark.parametrize("case", list(WORST_CASES))
def test_worst_case_inputs_are_bounded(case: str) -> None:
    check(WORST_CASES[case])


def test_inputs_over_the_size_limit_are_refused_unread() -> None:
    data = der.sequence(der.octet_string(b"\x00" * MAX_REQUEST_SIZE))
    assert isinstance(timed_parse(data), OcspMalformed)


def test_corpus_covers_every_hash_and_a_nonce() -> None:
    parsed = [parse_request(seed) for seed in CORPUS]
    assert {c.hash_algorithm for request in parsed for c in request.cert_ids} == set(DIGEST_SIZES)
    assert {len(request.nonce or b"") for request in parsed} >= {0, 1, 16, 32}
