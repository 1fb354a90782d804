"""What a caller reads when its CSR is refused: INVALID_ARGUMENT / INVALID_CSR with a message
that names the rule broken, never a parser's internals (it used to say
`ParseError { kind: ShortData { needed: 104 } }`)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import grpc
import pytest

from ca_service.api import pb
from ca_service.client import api_error, secure_channel, stub
from tests.integration.revocation_support import new_user
from tests.support import CaProcess, make_csr, start_http_ca

_INTERNALS = re.compile(
    r"ParseError|ShortData|UnexpectedTag|InvalidData|MalformedFraming|asn1|cryptography|[{}]"
)


@pytest.fixture(scope="module")
def ca_server(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[CaProcess]:
    """A CA with a Redis (accounts need one: the CSR's owner must exist)."""
    process = start_http_ca(tmp_path_factory.mktemp("csr") / "ca", redis_server, "csrtest:")
    yield process
    process.stop()


def _pem(der: bytes, label: str = "CERTIFICATE REQUEST") -> bytes:
    return b"-----BEGIN %b-----\n%b-----END %b-----\n" % (
        label.encode(),
        base64.encodebytes(der),
        label.encode(),
    )


def _malformed(case: str) -> bytes:
    good = make_csr()
    if case == "truncated":
        return good[:104]
    if case == "garbage":
        return b"this is not a certificate request"
    if case == "wrong-signature":
        tampered = bytearray(good)
        tampered[-3] ^= 0x01
        return bytes(tampered)
    if case == "pem-junk":
        return _pem(b"").replace(b"\n-----END", b"%%%junk%%%\n-----END")
    if case == "pem-cut-short":
        return _pem(good)[:120]
    if case == "pem-of-a-key":
        return _pem(good, "PRIVATE KEY")
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "rule"),
    [
        ("truncated", "it is cut short"),
        ("garbage", "DER-encoded CertificationRequest (a SEQUENCE, RFC 2986 section 4.2)"),
        ("wrong-signature", "CSR signature does not verify with its own public key"),
        ("pem-junk", "not base64 (RFC 7468)"),
        ("pem-cut-short", "has no '-----END CERTIFICATE REQUEST-----' line"),
        ("pem-of-a-key", "the PEM block is a PRIVATE KEY; a CSR is a CERTIFICATE REQUEST"),
    ],
)
def test_a_malformed_csr_gets_a_message_naming_the_rule(
    ca_server: CaProcess, case: str, rule: str
) -> None:
    user_id = new_user(ca_server, "csr")
    request = pb.SignCsrRequest(csr=_malformed(case), user_id=user_id)
    with (
        secure_channel(ca_server.address, ca_server.operator()) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        stub(channel).SignCsr(request)
    problem = api_error(caught.value)
    assert (problem.code, problem.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CSR")
    message = caught.value.details() or ""
    assert rule in message, message
    assert not _INTERNALS.search(message), message
