"""Certificates the gateway refuses, and identity cards, in a real browser (issues 11 and 12):
Chromium presenting a certificate from a foreign CA on the normal login gets the gateway's
Japanese page (not a TLS error), and a card certificate on a card route reaches the portal,
which shows the holder's attributes. Screenshots in ``artifacts/screenshots/card-*.png``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import browser, client_certificate, driver, new_context, screenshot_dir, shot
from tests.gateway.card_ca import HOLDER, CardCa, start_card_gateway
from tests.gateway.gateway_stack import GatewayStack, Process

__all__ = ["browser", "driver"]  # the fixtures, shared (tests/browser.py)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def card_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardCa]:
    ca = CardCa(tmp_path_factory.mktemp("card-ca"))
    ca.start()
    yield ca
    ca.stop()


@pytest.fixture(scope="module")
def card_gateway(gateway_stack: GatewayStack, card_ca: CardCa) -> Process:
    return start_card_gateway(gateway_stack, card_ca)


@pytest.fixture(scope="module")
def screenshots() -> Path:
    return screenshot_dir(prefix="card-")


def _foreign_certificate(directory: Path) -> Path:
    """A self-made CA's client certificate, as a browser might hold for another site."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-noenc", "-days", "30", "-subj", "/O=他社/CN=someone",
            "-addext", "extendedKeyUsage=clientAuth",
            "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return directory


def test_a_foreign_certificate_on_the_login_gets_a_japanese_page(
    browser: Browser, card_gateway: Process, screenshots: Path, tmp_path: Path
) -> None:
    base = f"https://localhost:{card_gateway.port}"
    foreign = _foreign_certificate(tmp_path / "foreign")
    context = new_context(browser, client_certificates=client_certificate(foreign, base))
    try:
        page = context.new_page()
        answer = page.goto(base + "/echo")
        assert answer is not None and answer.status == 403
        expect(page.locator("body")).to_contain_text(
            "この電子証明書は本サービスが発行したものではありません。"
        )
        shot(page, screenshots, "card-01-foreign-certificate")
        # The login itself says the same, rather than taking it for a user.
        answer = page.goto(base + "/login/password")
        assert answer is not None and answer.status == 403
        expect(page.locator("body")).to_contain_text(
            "この電子証明書は本サービスが発行したものではありません。"
        )
    finally:
        context.close()


def test_a_card_certificate_on_a_card_route_reaches_the_portal(
    browser: Browser, card_gateway: Process, card_ca: CardCa, screenshots: Path, tmp_path: Path
) -> None:
    base = f"https://localhost:{card_gateway.port}"
    card = card_ca.issue(tmp_path / "card")
    context = new_context(browser, client_certificates=client_certificate(card, base))
    try:
        page = context.new_page()
        answer = page.goto(base + "/procedures/card/")
        assert answer is not None and answer.status == 200
        expect(page.locator("#card-holder")).to_have_text("マイナンバーカードで本人確認しました")
        expect(page.locator("#name")).to_have_text(HOLDER.name)
        expect(page.locator("#address")).to_have_text(HOLDER.address)
        expect(page.locator("#birth-date")).to_have_text("1990-01-02")
        shot(page, screenshots, "card-02-card-holder")
        # The same card on the normal (user) route: a page saying it is the wrong one.
        answer = page.goto(base + "/echo")
        assert answer is not None and answer.status == 403
        expect(page.locator("body")).to_contain_text(
            "マイナンバーカードの署名用電子証明書ではログインできません。"
        )
        shot(page, screenshots, "card-03-card-on-user-route")
    finally:
        context.close()
