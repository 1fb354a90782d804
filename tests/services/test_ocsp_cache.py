"""The OCSP responder's answer cache (issue 9, item 5): nonce-free answers are kept per
CertID whatever else the request carries, memory stays under the configured bound
(least recently used answers go first), and a revocation drops the answers at once.

The responder runs in-process on a real SQLite store with real keys; requests go through
the real HTTP endpoint object (as the server calls it), and memory is measured with
tracemalloc."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import os
import tracemalloc
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from ca_service.adapters.http.relying_party import OcspEndpoint
from ca_service.adapters.sql.certificates import SqlCertificateStore
from ca_service.adapters.sql.database import Database
from ca_service.adapters.sql.revocations import SqlRevocationStore
from ca_service.domain.profiles import ClientCertificateProfile
from ca_service.domain.records import CertificateRecord, KeySource
from ca_service.domain.validity import validity_for
from ca_service.pki import der
from ca_service.pki.certificates import ClientCertificateFactory, ClientSubject, new_serial
from ca_service.pki.hierarchy import IssuedCa, create_pair
from ca_service.pki.keys import KeyAlgorithm, generate_key
from ca_service.pki.ocsp import create_ocsp_signing_certificate, parse_request, plain_cert_id
from ca_service.pki.signer import SoftwareSigner
from ca_service.services.ocsp import OcspAnswer, OcspResponder
from ca_service.services.ocsp_cache import ENTRY_OVERHEAD, AnswerCache
from ca_service.shared.http.parser import Incoming
from ca_service.shared.http.server import Connection, Request, Response
from tests.fakes import FakeClock
from tests.ocsp_requests import HASH_OIDS, cert_id, request_der
from tests.support import EXAMPLE_CA, store_revoke

NOW = datetime.now(UTC).replace(microsecond=0)
CLIENT_PROFILE = ClientCertificateProfile(
    crl_url="http://127.0.0.1/crl/issuing.crl",
    ocsp_url="http://127.0.0.1/ocsp",
    ca_issuers_url="http://127.0.0.1/ca/issuing.der",
    user_uri_prefix="https://ca.example.jp/users/",
)


def _spki(key: object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _request(method: str, target: str, body: bytes = b"") -> Request:
    head = Incoming((method, target, "HTTP/1.1"), [("Host", "ocsp.test")])
    return Request(head, Connection("127.0.0.1", None, None, False), content=body)


@dataclass
class Responder:
    responder: OcspResponder
    endpoint: OcspEndpoint
    revocations: SqlRevocationStore
    issuing: IssuedCa
    serials: list[int]

    async def post(self, body: bytes) -> bytes:
        body = (await self.call(_request("POST", "/ocsp", body))).body
        assert isinstance(body, bytes)
        return body

    async def post_get(self, path: str) -> bytes:
        body = (await self.call(_request("GET", path))).body
        assert isinstance(body, bytes)
        return body

    async def call(self, request: Request) -> Response:
        answer = self.endpoint(request)
        response = await answer if isinstance(answer, Awaitable) else answer
        assert response.status == 200
        return response

    def cert_id(self, serial: int, algorithm: str = "sha1", null_params: bool = False) -> bytes:
        issuer = x509.load_der_x509_certificate(self.issuing.certificate_der)
        return cert_id(issuer, serial, algorithm, null_params)


async def _responder(database: Database, certificates: int, cache_bytes: int) -> Responder:
    pair = create_pair(KeyAlgorithm.EC_P256, EXAMPLE_CA, NOW)
    issuing_signer = SoftwareSigner(pair.issuing_key)
    factory = ClientCertificateFactory(
        issuing_signer,
        issuer_name=pair.issuing.subject,
        issuer_key_id=pair.issuing.key_id,
        profile=CLIENT_PROFILE,
    )
    store = SqlCertificateStore(database)
    leaf_spki = _spki(ec.generate_private_key(ec.SECP256R1()))
    validity = validity_for(NOW)
    records = []
    for index in range(certificates):
        serial = new_serial()
        subject = ClientSubject(user_id=f"cache{index:04d}", organization="Cache Co")
        certificate = factory.build(
            serial=serial, subject=subject, spki=leaf_spki, validity=validity
        )
        records.append(
            CertificateRecord(
                serial=serial,
                fingerprint_sha256=hashlib.sha256(certificate).hexdigest(),
                user_id=subject.user_id,
                organization=subject.organization,
                subject=f"CN={subject.user_id}",
                not_before=validity.not_before,
                not_after=validity.not_after,
                issued_at=NOW,
                key_source=KeySource.CSR,
                der=certificate,
            )
        )
    await asyncio.gather(*(store.record_issued(record) for record in records))
    responder_key = generate_key(KeyAlgorithm.EC_P256)
    responder_der = create_ocsp_signing_certificate(
        issuing_signer,
        issuer_name=pair.issuing.subject,
        issuer_key_id=pair.issuing.key_id,
        responder_spki=_spki(responder_key),
        common_name="OCSP Responder",
        organization=EXAMPLE_CA.organization,
        not_before=NOW - timedelta(minutes=5),
        not_after=NOW + timedelta(days=7),
    )
    clock = FakeClock(NOW)
    revocations = SqlRevocationStore(database)
    responder = OcspResponder(
        signer=SoftwareSigner(responder_key),
        responder_certificate=responder_der,
        responder_key_id=x509.load_der_x509_certificate(responder_der)
        .extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        .value.digest,
        issuer_name=pair.issuing.subject,
        issuer_public_key=_spki(pair.issuing_key),
        certificates=store,
        revocations=revocations,
        clock=clock,
        cache_bytes=cache_bytes,
    )
    endpoint = OcspEndpoint(responder, clock, "/ocsp")
    return Responder(
        responder, endpoint, revocations, pair.issuing, [record.serial for record in records]
    )


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


# -- the cache alone ------------------------------------------------------------------------


def test_cache_keeps_the_bound_and_evicts_the_least_recently_used() -> None:
    later = NOW + timedelta(minutes=30)
    entry = 1000 + 10 + ENTRY_OVERHEAD  # payload + CertID octets + overhead
    cache: AnswerCache[str] = AnswerCache(max_bytes=3 * entry)
    for index in range(3):
        cache.put(b"certid-%03d" % index, index, f"answer {index}", 1000, later)
    assert len(cache) == 3 and cache.held_bytes == 3 * entry and cache.evictions == 0
    assert cache.get(b"certid-000", NOW) == "answer 0"  # now the most recently used
    cache.put(b"certid-003", 3, "answer 3", 1000, later)
    assert cache.held_bytes == 3 * entry and cache.evictions == 1
    assert cache.get(b"certid-001", NOW) is None  # the least recently used went
    assert cache.get(b"certid-000", NOW) == "answer 0"
    # Replacing an answer does not count it twice.
    cache.put(b"certid-003", 3, "answer 3 again", 1000, later)
    assert len(cache) == 3 and cache.held_bytes == 3 * entry
    # Due for re-signing: not served.
    assert cache.get(b"certid-003", later) is None
    # A revocation drops every CertID of the serial.
    cache.put(b"certid-003-sha256", 3, "answer 3 sha256", 1000, later)
    cache.drop_serial(3)
    assert cache.get(b"certid-003", NOW) is None and cache.get(b"certid-003-sha256", NOW) is None
    assert cache.held_bytes == entry * len(cache)
    # An answer bigger than the bound is not kept, and a bound of 0 keeps nothing.
    cache.put(b"huge", 9, "huge", 4 * entry, later)
    assert cache.get(b"huge", NOW) is None
    empty: AnswerCache[str] = AnswerCache(max_bytes=0)
    empty.put(b"x", 1, "x", 1, later)
    assert len(empty) == 0 and empty.held_bytes == 0


def test_plain_cert_id_finds_the_cert_id_of_exactly_the_plain_shape() -> None:
    cert_id = der.sequence(
        der.sequence(HASH_OIDS["sha256"]), der.octet_string(b"n" * 32), der.octet_string(b"k" * 32)
    ) + der.integer(2**125)
    cert_id = der.sequence(cert_id[2:])  # any CertID-like content will do here
    for size in (1, 100, 200, 70_000):  # one-, two- and three-octet lengths
        padded = der.sequence(der.octet_string(b"x" * size))
        plain = der.sequence(der.sequence(der.sequence(der.sequence(padded))))
        assert plain_cert_id(plain) == padded
        assert plain_cert_id(plain + b"\x00") is None  # trailing octets
        assert plain_cert_id(plain[:-1]) is None  # truncated
    plain = der.sequence(der.sequence(der.sequence(der.sequence(cert_id))))
    assert plain_cert_id(plain) == cert_id
    with_extension = request_der(cert_id, extension=b"x")
    assert plain_cert_id(with_extension) is None
    # A non-minimal length (0x81 0x05 for 5) is not DER: not the plain shape.
    assert plain_cert_id(b"\x30\x81\x07\x30\x05\x30\x03\x30\x01\x00") is None
    assert plain_cert_id(b"") is None and plain_cert_id(b"\x30") is None


# -- the responder ----------------------------------------------------------------------------


def _variants(responder: Responder, serial: int, count: int) -> list[bytes]:
    """``count`` distinct valid nonce-free requests for one certificate, spread over four
    CertID encodings (SHA-1 and SHA-256, hash parameters absent and NULL)."""
    cert_ids = [
        responder.cert_id(serial, algorithm, null_params)
        for algorithm in ("sha1", "sha256")
        for null_params in (False, True)
    ]
    requests = [request_der(cert_id) for cert_id in cert_ids]
    requests += [request_der(cert_id, acceptable=True) for cert_id in cert_ids]
    index = 0
    while len(requests) < count:
        cert_id = cert_ids[index % len(cert_ids)]
        noise = os.urandom(8).hex().encode()
        shape = index % 4
        if shape == 0:
            requests.append(request_der(cert_id, requestor=b"urn:requestor:" + noise))
        elif shape == 1:
            requests.append(request_der(cert_id, extension=noise, acceptable=index % 3 == 0))
        elif shape == 2:
            requests.append(request_der(cert_id, single_extension=noise))
        else:
            requests.append(request_der(cert_id, signature=noise, requestor=b"urn:x"))
        index += 1
    assert len(set(requests)) == count
    for request in requests[:: count // 50]:
        assert parse_request(request).nonce is None  # well-formed and nonce-free
    return requests


async def test_many_distinct_requests_for_one_certificate_share_one_answer_per_cert_id(
    sqlite_database: Database,
) -> None:
    responder = await _responder(sqlite_database, certificates=1, cache_bytes=1 << 20)
    serial = responder.serials[0]
    requests = _variants(responder, serial, 2000)
    # Warm up: one answer per CertID encoding, plus whatever the first call allocates.
    for request in requests[:8]:
        await responder.post(request)
    tracemalloc.start()
    try:
        before = _traced()
        bodies: dict[bytes, set[bytes]] = {}
        for request in requests:
            body = await responder.post(request)
            cert_id = parse_request(request).cert_ids[0].der
            bodies.setdefault(cert_id, set()).add(body)
        # GET (RFC 5019 5) shares the same answers.
        for request in requests[:100]:
            path = "/ocsp/" + base64.b64encode(request).decode()
            body = await responder.post_get(path)
            bodies[parse_request(request).cert_ids[0].der].add(body)
        del body
        grown = _traced() - before
    finally:
        tracemalloc.stop()
    # Four CertID encodings were asked about, 2,100 times: four signed answers.
    assert len(bodies) == 4
    assert all(len(answers) == 1 for answers in bodies.values()), {
        len(answers) for answers in bodies.values()
    }
    for cert_id, answers in bodies.items():
        parsed = ocsp.load_der_ocsp_response(next(iter(answers)))
        assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert parsed.serial_number == serial
        # The answer echoes the CertID as the client encoded it (RFC 6960 4.2.1).
        assert cert_id in next(iter(answers))
    assert len(responder.responder.cache) == 4
    # Keeping an answer per request would have grown by ~2,000 answers (> 2 MB).
    assert grown < 256 * 1024, grown


async def test_memory_stays_under_the_bound_and_old_answers_are_evicted(
    sqlite_database: Database,
) -> None:
    # 800 answers (400 certificates, SHA-1 and SHA-256 CertIDs) of ~2.4 KB each do not fit.
    bound = 1 << 20
    responder = await _responder(sqlite_database, certificates=400, cache_bytes=bound)
    cache = responder.responder.cache
    first = request_der(responder.cert_id(responder.serials[0]))
    first_answer = await responder.post(first)
    tracemalloc.start()
    try:
        before = _traced()
        for serial in responder.serials:
            for algorithm in ("sha1", "sha256"):
                await responder.post(request_der(responder.cert_id(serial, algorithm)))
                assert cache.held_bytes <= bound
        held = cache.held_bytes
        grown = _traced() - before
    finally:
        tracemalloc.stop()
    assert cache.evictions > 0 and len(cache) < 800
    # What the cache accounts for covers what it really holds: tracemalloc sees the
    # answers, entries, indexes and the endpoint's rendered headers (~2.4 KB per answer;
    # the cache counts body + CertID + ENTRY_OVERHEAD, ~2.9 KB), and also a few dozen KB
    # that are no answer's (SQLite cursors, asyncio).
    assert grown <= held, (grown, held, len(cache))
    # The most recent answer is still served from memory; the first was evicted and is
    # signed again (ECDSA signatures differ).
    last = request_der(responder.cert_id(responder.serials[-1], "sha256"))
    assert await responder.post(last) == await responder.post(last)
    assert await responder.post(first) != first_answer


async def test_a_revocation_drops_every_answer_about_the_certificate_at_once(
    sqlite_database: Database,
) -> None:
    responder = await _responder(sqlite_database, certificates=2, cache_bytes=1 << 20)
    serial, other = responder.serials
    requests = [
        request_der(responder.cert_id(serial, algorithm, null_params))
        for algorithm in ("sha1", "sha256")
        for null_params in (False, True)
    ]
    for request in requests:
        assert responder.responder.cached(request) is None
        await responder.post(request)
        assert isinstance(responder.responder.cached(request), OcspAnswer)
    kept = await responder.post(request_der(responder.cert_id(other)))
    await store_revoke(responder.revocations, NOW, serial=serial)
    await responder.responder.catch_up()
    for request in requests:
        assert responder.responder.cached(request) is None
        parsed = ocsp.load_der_ocsp_response(await responder.post(request))
        assert parsed.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert await responder.post(request_der(responder.cert_id(other))) == kept
