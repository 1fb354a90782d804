"""The gateway's routes and identity card mode from the outside (issue 12, SPEC D2), curl as
the client: a test card CA with its CRL on a real HTTP server; a card certificate's holder
reaches the upstream in headers (checked decoded, in the sample upstream's echo); revoked,
expired, foreign and this CA's certificates are refused on a card route with a Japanese page,
a card certificate on a user route too; client-sent identity headers never pass; a card CRL
server down past nextUpdate fails closed (503) and the health endpoint says so."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.gateway.card_ca import HOLDER, CardCa, start_card_gateway
from tests.gateway.curl import Client, echoed_headers
from tests.gateway.gateway_stack import CertifiedUser, GatewayStack, Process

pytestmark = pytest.mark.slow

CARD_LIFETIME = timedelta(seconds=3)  # the CRL's: the gateway fetches the next one that often
SPOOFED = (
    "-H", "X-Card-Name: 偽物",
    "-H", "x-card-address: nowhere",
    "-H", "X-Card-Birth-Date: 2000-01-01",
    "-H", "X-Card-Sex: 9",
    "-H", "X-Card-Fingerprint: 00",
    "-H", "X-User-Id: admin",
    "-H", "X-Forwarded-Client-Cert: Hash=00",
)  # fmt: skip


@pytest.fixture(scope="module")
def card_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardCa]:
    ca = CardCa(tmp_path_factory.mktemp("card-ca"), crl_lifetime=CARD_LIFETIME)
    ca.start()
    yield ca
    ca.stop()


@pytest.fixture(scope="module")
def card_gateway(gateway_stack: GatewayStack, card_ca: CardCa) -> Process:
    return start_card_gateway(gateway_stack, card_ca)


@pytest.fixture(scope="module")
def user(gateway_stack: GatewayStack, tmp_path_factory: pytest.TempPathFactory) -> CertifiedUser:
    return gateway_stack.certified_user("card0001", tmp_path_factory.mktemp("card0001"))


def _url(gateway: Process) -> str:
    return f"https://localhost:{gateway.port}"


def _fingerprint(directory: Path) -> str:
    pem = (directory / "cert.pem").read_bytes()
    return hashlib.sha256(
        x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    ).hexdigest()


def test_a_card_holder_reaches_the_upstream_in_headers(
    gateway_stack: GatewayStack, card_gateway: Process, card_ca: CardCa, tmp_path: Path
) -> None:
    card = card_ca.issue(tmp_path / "card")
    client = Client(gateway_stack, tmp_path, card)
    status, _, body = client("/procedures/card/echo?x=1", *SPOOFED, url=_url(card_gateway))
    assert status == 200, body
    assert json.loads(body)["path"] == "/procedures/card/echo?x=1"  # forwarded unchanged
    received = echoed_headers(body)
    # Percent-encoded UTF-8 on the wire (as the organisation header), exactly one of each:
    # the client's copies were removed.
    assert received["x-card-name"] == [quote(HOLDER.name, safe=" ")]
    assert unquote(received["x-card-name"][0]) == "共済 太郎"
    assert unquote(received["x-card-address"][0]) == "東京都港区虎ノ門3-5-1"
    assert received["x-card-birth-date"] == ["1990-01-02"]
    assert received["x-card-sex"] == ["1"]
    assert received["x-card-fingerprint"] == [_fingerprint(card)]
    for ours in ("x-user-id", "x-forwarded-client-cert", "x-org-id", "x-user-role"):
        assert ours not in received
    # The sample upstream's page shows the holder (what a portal would do with it).
    page = client("/procedures/card/", url=_url(card_gateway))
    assert page[0] == 200 and "共済 太郎" in page[2] and "1990-01-02" in page[2]


def test_a_public_route_carries_no_identity(
    gateway_stack: GatewayStack, card_gateway: Process, user: CertifiedUser, tmp_path: Path
) -> None:
    for certificate in (None, user.cert):
        client = Client(gateway_stack, tmp_path, certificate)
        status, _, body = client("/procedures/echo", *SPOOFED, url=_url(card_gateway))
        assert status == 200, body
        received = echoed_headers(body)
        for name in (
            "x-card-name",
            "x-card-address",
            "x-card-birth-date",
            "x-card-sex",
            "x-card-fingerprint",
            "x-user-id",
            "x-forwarded-client-cert",
        ):
            assert name not in received, (name, received)
    # The user route behind it is unchanged: no certificate, the login page (which brings
    # the user back to the page asked for).
    status, headers, _ = Client(gateway_stack, tmp_path)("/echo", url=_url(card_gateway))
    assert status == 303 and headers["location"] == "/login?next=/echo"


def test_wrong_certificates_get_a_page_saying_why(
    gateway_stack: GatewayStack,
    card_gateway: Process,
    card_ca: CardCa,
    user: CertifiedUser,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    foreign = CardCa(tmp_path / "foreign", name="Foreign Card CA").issue(tmp_path / "f")
    expired = card_ca.issue(
        tmp_path / "expired",
        not_before=now - timedelta(days=400),
        not_after=now - timedelta(days=1),
    )
    card = card_ca.issue(tmp_path / "card")
    on_card_route = "/procedures/card/echo"
    cases = [
        (on_card_route, None, 401, "この手続きにはマイナンバーカードの署名用電子証明書が必要"),
        (on_card_route, foreign, 403, "この電子証明書はマイナンバーカードの署名用電子証明書では"),
        (on_card_route, expired, 403, "署名用電子証明書の有効期限が切れています"),
        (on_card_route, user.cert, 403, "本サービスが発行した電子証明書はこの手続きには使えません"),
        ("/echo", card, 403, "マイナンバーカードの署名用電子証明書ではログインできません"),
    ]
    for path, certificate, status, text in cases:
        answer = Client(gateway_stack, tmp_path, certificate)(path, url=_url(card_gateway))
        assert answer[0] == status and text in answer[2], (path, certificate, answer)
        assert "<html" in answer[2]  # a page, not a TLS error


def test_a_revoked_card_is_refused_once_the_crl_says_so(
    gateway_stack: GatewayStack, card_gateway: Process, card_ca: CardCa, tmp_path: Path
) -> None:
    card = card_ca.issue(tmp_path / "card")
    client = Client(gateway_stack, tmp_path, card)
    assert client("/procedures/card/echo", url=_url(card_gateway))[0] == 200
    card_ca.revoke(card)
    deadline = time.monotonic() + CARD_LIFETIME.total_seconds() + 5
    while True:
        status, _, body = client("/procedures/card/echo", url=_url(card_gateway))
        if status == 403:
            break
        assert status == 200 and time.monotonic() < deadline, "not refused after nextUpdate"
        time.sleep(0.2)
    assert "このマイナンバーカードの署名用電子証明書は失効しています" in body


def test_the_card_crl_server_down_past_next_update_fails_closed(
    gateway_stack: GatewayStack, card_gateway: Process, card_ca: CardCa, tmp_path: Path
) -> None:
    card = card_ca.issue(tmp_path / "card")
    client = Client(gateway_stack, tmp_path, card)
    url = _url(card_gateway)
    assert client("/procedures/card/echo", url=url)[0] == 200
    card_ca.stop()
    try:
        deadline = time.monotonic() + CARD_LIFETIME.total_seconds() + 5
        while True:
            status, headers, body = client("/procedures/card/echo", url=url)
            if status == 503:
                break
            assert status == 200 and time.monotonic() < deadline, "still served past nextUpdate"
            time.sleep(0.2)
        assert "失効状況を確認できない" in body and headers["retry-after"] == "5"
        health = client("/-/health", url=url)
        report = json.loads(health[2])
        assert health[0] == 200 and report["status"] == "degraded", report
        assert report["card_revocations"]["fresh"] is False
        assert "cannot fetch" in report["card_revocations"]["crls"][0]["last_error"]
        # The user routes do not depend on the card CA.
        assert Client(gateway_stack, tmp_path)("/echo", url=url)[0] == 303
    finally:
        card_ca.start()
    deadline = time.monotonic() + 15
    while client("/procedures/card/echo", url=url)[0] != 200:
        assert time.monotonic() < deadline, "the card route did not come back with the CRL"
        time.sleep(0.2)
    assert json.loads(client("/-/health", url=url)[2])["status"] == "ok"


def test_header_names_are_configurable_and_both_names_are_stripped(
    gateway_stack: GatewayStack, card_ca: CardCa, tmp_path: Path
) -> None:
    renamed = start_card_gateway(
        gateway_stack,
        card_ca,
        name="card-gateway-renamed",
        GATEWAY_HEADER_CARD_NAME="X-Holder-Name",
        GATEWAY_HEADER_CARD_FINGERPRINT="X-Holder-Certificate",
    )
    try:
        card = card_ca.issue(tmp_path / "card")
        status, _, body = Client(gateway_stack, tmp_path, card)(
            "/procedures/card/echo",
            *SPOOFED,
            "-H",
            "X-Holder-Name: 偽物",
            url=_url(renamed),
        )
        assert status == 200, body
        received = echoed_headers(body)
        assert [unquote(value) for value in received["x-holder-name"]] == [HOLDER.name]
        assert received["x-holder-certificate"] == [_fingerprint(card)]
        assert "x-card-name" not in received and "x-card-fingerprint" not in received
        assert received["x-card-sex"] == ["1"]  # the names not configured keep the default
    finally:
        renamed.stop()
        gateway_stack.gateways.remove(renamed)
