"""gateway.card, gateway.card_crl and gateway.routes: an identity card certificate (SPEC D2)
checked against its own trust anchors, the JPKI-profile attributes read, each refusal, the
card CA's CRL fetched from a real HTTP server and held until its nextUpdate; the route
setting. The test card CA's certificates and CRL pass pkilint."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.card import (
    DEFAULT_CARD_ATTRIBUTES,
    AttributeSource,
    CardTrust,
    parse_card_attributes,
)
from gateway.card_crl import CardRevocations
from gateway.identity import Refusal, Refused
from gateway.routes import Mode, RouteTable, parse_routes
from tests.gateway.card_ca import HOLDER, CardCa, CardHolder
from tests.support import pkilint_certificate, pkilint_crl


def _der(directory: Path) -> bytes:
    pem = (directory / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


class View:
    def __init__(self, revoked: set[int] | None = None, current: bool = True) -> None:
        self.revoked = revoked or set()
        self.current = current

    def card_revoked(self, issuer: x509.Name, serial: int) -> bool | None:
        return serial in self.revoked if self.current else None


@pytest.fixture(scope="module")
def card_ca(tmp_path_factory: pytest.TempPathFactory) -> CardCa:
    return CardCa(tmp_path_factory.mktemp("card-ca"))


@pytest.fixture(scope="module")
def our_ca(tmp_path_factory: pytest.TempPathFactory) -> CardCa:
    """Stands for this CA: a different CA whose certificates must never pass as a card's."""
    return CardCa(tmp_path_factory.mktemp("our-ca"), name="Our Issuing CA")


def _trust(card_ca: CardCa, our_ca: CardCa) -> CardTrust:
    return CardTrust(
        [card_ca.certificate],
        parse_card_attributes(DEFAULT_CARD_ATTRIBUTES),
        our_issuer_der=our_ca.certificate.public_bytes(Encoding.DER),
    )


def test_the_holders_attributes_are_read_from_the_jpki_profile(
    card_ca: CardCa, our_ca: CardCa, tmp_path: Path
) -> None:
    der = _der(card_ca.issue(tmp_path / "card"))
    holder = _trust(card_ca, our_ca).verify(der, now=datetime.now(UTC), revocations=View())
    assert holder.name == HOLDER.name and holder.address == HOLDER.address
    assert holder.birth_date == "1990-01-02"  # the era digit dropped, the date as ISO 8601
    assert holder.sex == "1"
    assert len(holder.fingerprint_sha256) == 64 and holder.issuer == card_ca.name


def test_attribute_places_are_configurable(card_ca: CardCa, our_ca: CardCa, tmp_path: Path) -> None:
    placed = parse_card_attributes(DEFAULT_CARD_ATTRIBUTES)
    placed["name"] = AttributeSource("subject", x509.ObjectIdentifier("2.5.4.6"))  # C=
    trust = CardTrust(
        [card_ca.certificate], placed, our_issuer_der=our_ca.certificate.public_bytes(Encoding.DER)
    )
    holder = trust.verify(
        _der(card_ca.issue(tmp_path / "card")), now=datetime.now(UTC), revocations=View()
    )
    assert holder.name == "JP"
    with pytest.raises(ValueError, match="no place given for sex"):
        parse_card_attributes("name=san:1.2.3, address=san:1.2.4, birth_date=subject:2.5.4.3")
    with pytest.raises(ValueError, match="NAME=san:OID"):
        parse_card_attributes("nickname=san:1.2.3")


def test_every_refusal(card_ca: CardCa, our_ca: CardCa, tmp_path: Path) -> None:
    trust = _trust(card_ca, our_ca)
    now = datetime.now(UTC)
    other_card_ca = CardCa(tmp_path / "other", name="Other Card CA")
    cases = [
        (
            card_ca.issue(
                tmp_path / "expired",
                not_before=now - timedelta(days=30),
                not_after=now - timedelta(days=1),
            ),
            View(),
            Refusal.CARD_EXPIRED,
        ),
        (
            card_ca.issue(tmp_path / "early", not_before=now + timedelta(days=1)),
            View(),
            Refusal.CARD_NOT_YET_VALID,
        ),
        (
            card_ca.issue(tmp_path / "no-signing", signing=False),
            View(),
            Refusal.CARD_NOT_FOR_SIGNING,
        ),
        (
            card_ca.issue(tmp_path / "nameless", CardHolder("", "住所", "1990-01-02", "2")),
            View(),
            Refusal.CARD_ATTRIBUTES_MISSING,
        ),
        (other_card_ca.issue(tmp_path / "foreign"), View(), Refusal.NOT_A_CARD),
        (our_ca.issue(tmp_path / "ours"), View(), Refusal.OUR_CERTIFICATE_ON_CARD_ROUTE),
        (card_ca.issue(tmp_path / "stale"), View(current=False), Refusal.CARD_STALE),
    ]
    for directory, view, refusal in cases:
        with pytest.raises(Refused) as refused:
            trust.verify(_der(directory), now=now, revocations=view)
        assert refused.value.refusal is refusal, directory.name
    revoked = card_ca.issue(tmp_path / "revoked")
    serial = x509.load_der_x509_certificate(_der(revoked)).serial_number
    with pytest.raises(Refused) as refused:
        trust.verify(_der(revoked), now=now, revocations=View({serial}))
    assert refused.value.refusal is Refusal.CARD_REVOKED
    # A certificate with the card CA's name but another key's signature is no card's.
    impostor = CardCa(tmp_path / "impostor", subject=card_ca.name)
    with pytest.raises(Refused) as refused:
        trust.verify(_der(impostor.issue(tmp_path / "impostor-card")), now=now, revocations=View())
    assert refused.value.refusal is Refusal.NOT_A_CARD
    assert trust.issued(_der(card_ca.issue(tmp_path / "mine")))
    assert not trust.issued(_der(our_ca.issue(tmp_path / "ours-again")))


def test_this_ca_cannot_be_a_card_ca(card_ca: CardCa) -> None:
    with pytest.raises(ValueError, match="cannot be an identity card CA"):
        CardTrust(
            [card_ca.certificate],
            parse_card_attributes(DEFAULT_CARD_ATTRIBUTES),
            our_issuer_der=card_ca.certificate.public_bytes(Encoding.DER),
        )


async def test_the_card_crl_is_fetched_held_until_next_update_and_fails_closed(
    tmp_path: Path,
) -> None:
    card_ca = CardCa(tmp_path / "ca", crl_lifetime=timedelta(seconds=2))
    card = card_ca.issue(tmp_path / "card")
    serial = x509.load_der_x509_certificate(_der(card)).serial_number
    view = CardRevocations(
        [card_ca.crl_url], [card_ca.certificate], now=lambda: datetime.now(UTC), refresh=60
    )
    await view.refresh_once()  # the server is not up: nothing held, fail closed
    assert view.card_revoked(card_ca.name, serial) is None and not view.is_fresh()
    assert "cannot fetch" in str(view.report()["crls"])
    card_ca.start()
    stop = asyncio.Event()
    running = asyncio.ensure_future(view.run(stop))
    try:
        for _ in range(100):
            if view.is_fresh():
                break
            await asyncio.sleep(0.05)
        assert view.card_revoked(card_ca.name, serial) is False
        card_ca.revoke(card)
        # The CRL reaches its nextUpdate within 2 s: the view fetches the next one then.
        for _ in range(80):
            if view.card_revoked(card_ca.name, serial):
                break
            await asyncio.sleep(0.05)
        assert view.card_revoked(card_ca.name, serial) is True
        assert card_ca.crl_requests <= 4  # held until nextUpdate, not polled all the time
        card_ca.stop()
        await asyncio.sleep(2.5)  # past the last CRL's nextUpdate, with the server down
        assert view.card_revoked(card_ca.name, serial) is None and not view.is_fresh()
        # Another CA's CRL at the URL proves nothing.
        assert view.card_revoked(CardCa(tmp_path / "x", name="X").name, serial) is None
    finally:
        stop.set()
        await running
        card_ca.stop()


def test_the_card_cas_certificates_and_crl_pass_pkilint(card_ca: CardCa, tmp_path: Path) -> None:
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(card_ca.certificate.public_bytes(Encoding.PEM))
    leaf = card_ca.issue(tmp_path / "card") / "cert.pem"
    crl = tmp_path / "card.crl"
    crl.write_bytes(card_ca.crl())
    for path in (ca_path, leaf):
        pkilint_certificate(path)
    pkilint_crl(crl)


def test_routes_longest_prefix_and_setting_errors() -> None:
    table = RouteTable(
        parse_routes(
            "/procedures/ public http://127.0.0.1:9000,\n/procedures/card/ card",
            "http://127.0.0.1:8081",
        )
    )
    assert table.match("/procedures/card/apply").mode is Mode.CARD
    assert table.match("/procedures/card/apply").upstream == "http://127.0.0.1:8081"
    assert table.match("/procedures/list").mode is Mode.PUBLIC
    assert table.match("/procedures").mode is Mode.USER  # a prefix, not a word
    assert table.match("/anything").upstream == "http://127.0.0.1:8081"
    for wrong, message in (
        ("procedures/ public", "starts with '/'"),
        ("/-/health public", "starts with '/'"),
        ("/x/ admin", "mode is one of"),
        ("/x/ public https://a.example", "http://HOST:PORT"),
        ("/x/ public http://a:1 extra", "PREFIX MODE"),
        ("/x/ public, /x/ card", "routed twice"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_routes(wrong, "http://127.0.0.1:8081")
