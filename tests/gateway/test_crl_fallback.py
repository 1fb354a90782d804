"""The gateway's CRL fallback reads the base CRL and the delta CRL it names (FreshestCRL),
served by a small HTTP server: the view is the base's serials plus the delta's, a delta over
a newer base makes it fetch the base again, and a delta that is missing, forged or does not
apply proves nothing (fail closed); so does a CRL that is garbage, signed by another key or
past its nextUpdate, and a server that refuses the connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gateway.crl_fallback import CrlSource

NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Issuing")])


def _ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(NAME)
        .issuer_name(NAME)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate, key


OURS, OUR_KEY = _ca()
THEIRS, THEIR_KEY = _ca()  # same name, another key


def _crl(
    serials: list[int],
    number: int,
    *,
    base: int | None = None,
    freshest: str | None = None,
    key: ec.EllipticCurvePrivateKey = OUR_KEY,
    next_update: timedelta = timedelta(hours=1),
) -> bytes:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(NAME)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    if base is not None:
        builder = builder.add_extension(x509.DeltaCRLIndicator(base), critical=True)
    if freshest is not None:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(freshest)], None, None, None)
        builder = builder.add_extension(x509.FreshestCRL([point]), critical=False)
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


@dataclass
class Served:
    """What the fake CA answers per path: (ETag, body), or None for 404."""

    documents: dict[str, tuple[str, bytes] | None] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    # Changes made right after a path has been answered (a CA publishing in between).
    after: dict[str, Callable[[], None]] = field(default_factory=dict)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, int]]:
    state = Served()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        path = head.split(" ")[1]
        state.requests.append(path)
        document = state.documents.get(path)
        if document is None:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        elif f'If-None-Match: "{document[0]}"' in head:
            writer.write(b'HTTP/1.1 304 Not Modified\r\nETag: "%b"\r\n\r\n' % document[0].encode())
        else:
            etag, body = document
            writer.write(
                b'HTTP/1.1 200 OK\r\nETag: "%b"\r\nContent-Length: %d\r\n\r\n%b'
                % (etag.encode(), len(body), body)
            )
        await writer.drain()
        writer.close()
        change = state.after.pop(path, None)
        if change is not None:
            change()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield state, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


# The public host in FreshestCRL: the gateway asks the server it was given, at that path.
DELTA = "http://crl.example.jp/crl/issuing-delta.crl"


async def test_base_plus_delta_and_a_newer_base(served: tuple[Served, int]) -> None:
    state, port = served
    source = CrlSource(f"http://127.0.0.1:{port}/crl/issuing.crl", OURS.public_bytes(Encoding.DER))
    state.documents["/crl/issuing.crl"] = ("b10", _crl([1, 2], 10, freshest=DELTA))
    state.documents["/crl/issuing-delta.crl"] = ("d11", _crl([], 11, base=10))
    fetched = await source.fetch()
    assert fetched is not None and fetched.serials == frozenset({1, 2})

    # A revocation: a new delta over the same base.
    state.documents["/crl/issuing-delta.crl"] = ("d12", _crl([3], 12, base=10))
    fetched = await source.fetch()
    assert fetched is not None and fetched.serials == frozenset({1, 2, 3})
    # Nothing new: both answer 304.
    state.requests.clear()
    fetched = await source.fetch()
    assert fetched is not None and fetched.serials is None
    assert state.requests == ["/crl/issuing.crl", "/crl/issuing-delta.crl"]

    # A new base (with 3 in it) and its delta, the delta seen first: the base is fetched again.
    state.documents["/crl/issuing-delta.crl"] = ("d14", _crl([4], 14, base=13))
    state.documents["/crl/issuing.crl"] = ("b13", _crl([1, 2, 3], 13, freshest=DELTA))
    fetched = await source.fetch()
    assert fetched is not None and fetched.serials == frozenset({1, 2, 3, 4})

    # Behind a load balancer one CA process already serves a delta over a base that the
    # other does not serve yet: the delta does not apply, nothing is proved.
    state.documents["/crl/issuing-delta.crl"] = ("d16", _crl([], 16, base=15))
    assert await source.fetch() is None
    # Then the new base appears between the gateway's requests (base and delta both answer
    # 304): the base fetched again counts.
    new_base = ("b15", _crl([1, 2, 3, 4, 5], 15, freshest=DELTA))
    state.after["/crl/issuing-delta.crl"] = lambda: state.documents.update(
        {"/crl/issuing.crl": new_base}
    )
    fetched = await source.fetch()
    assert fetched is not None and fetched.serials == frozenset({1, 2, 3, 4, 5})


@pytest.mark.parametrize(
    ("delta", "why"),
    [
        (None, "missing"),
        (("x", b"not a CRL"), "garbage"),
        (("x", _crl([3], 12, base=10, key=THEIR_KEY)), "signed by another key"),
        (("x", _crl([3], 12)), "not a delta"),
        (("x", _crl([3], 10, base=9)), "numbered not above the base"),
        (("x", _crl([3], 14, base=13)), "over a base the CA does not serve"),
    ],
)
async def test_a_delta_that_does_not_hold_proves_nothing(
    served: tuple[Served, int], delta: tuple[str, bytes] | None, why: str
) -> None:
    state, port = served
    source = CrlSource(f"http://127.0.0.1:{port}/crl/issuing.crl", OURS.public_bytes(Encoding.DER))
    state.documents["/crl/issuing.crl"] = ("b10", _crl([1], 10, freshest=DELTA))
    state.documents["/crl/issuing-delta.crl"] = delta
    assert await source.fetch() is None, why


async def test_only_a_verified_current_crl_is_used(served: tuple[Served, int]) -> None:
    state, port = served
    issuer = OURS.public_bytes(Encoding.DER)
    source = CrlSource(f"http://127.0.0.1:{port}/crl", issuer, timeout=2)
    state.documents["/crl"] = ("a", b"not a CRL")
    assert await source.fetch() is None  # garbage
    state.documents["/crl"] = ("b", _crl([7], 7, key=THEIR_KEY))
    assert await source.fetch() is None  # signed by another key
    state.documents["/crl"] = ("c", _crl([7], 8, next_update=timedelta(minutes=-1)))
    assert await source.fetch() is None  # past nextUpdate
    state.documents["/crl"] = ("d", _crl([7, 9], 9))
    fetched = await source.fetch()
    assert fetched is not None and fetched.serials == frozenset({7, 9})
    assert (
        await CrlSource("http://127.0.0.1:1/crl", OURS.public_bytes(Encoding.DER)).fetch() is None
    )
