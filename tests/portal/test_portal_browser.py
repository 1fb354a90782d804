"""The procedure portal in a real browser (SPEC D1–D3, seed 004): Playwright driving Debian's
chromium through the gateway — メールアドレス登録 (the address twice, [登録する] only with
同意します), the link from the mail sink, マイナンバーカード読み取り with an identity
certificate of the test card CA, 契約者基本情報確認, files attached in two rounds,
申請内容を確認する, [申請] clicked twice, 添付資料再提出完了 and the completion mail; then
an expired link, a revoked identity certificate, 6 files, 10 MB + 1 byte and a malformed
receipt number. Screenshots of every screen are kept in ``artifacts/screenshots/portal/``."""

from __future__ import annotations

import html
import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from ca_service.devtools.card_ca import revoke
from gateway.portal.procedure import MAX_FILES, MAX_TOTAL_BYTES
from tests.browser import browser, client_certificate, driver, new_context, screenshot_dir, shot
from tests.portal.portal_stack import MOUNT, PortalStack

pytestmark = pytest.mark.slow

__all__ = ["browser", "driver"]  # the fixtures, shared (tests/browser.py)

TIMEOUT_MS = 20_000
RECEIPT = "S0101-20230101102030-12345"
CARD = MOUNT + "card/"


@pytest.fixture(scope="module")
def screenshots() -> Path:
    return screenshot_dir("portal")


def _with_card(browser: Browser, stack: PortalStack, card: Path) -> BrowserContext:
    """A browser that presents the identity certificate ``card`` to the gateway (as the
    card reader would after the PIN)."""
    return new_context(
        browser,
        timeout_ms=TIMEOUT_MS,
        client_certificates=client_certificate(card, stack.url),
    )


def _register(page: Page, stack: PortalStack, address: str) -> None:
    page.goto(stack.url + MOUNT)
    expect(page.locator("h1")).to_have_text("メールアドレス登録")
    page.fill("#address", address)
    page.fill("#address_again", address)
    expect(page.locator("#btn-register")).to_be_disabled()  # not before 同意します
    page.check("#consent")
    expect(page.locator("#btn-register")).to_be_enabled()
    page.click("#btn-register")
    expect(page.locator("#sent-address")).to_have_text(address)


def _to_form(page: Page, stack: PortalStack, address: str) -> None:
    """Registration, the link, the card: on the re-submission form."""
    before = len(stack.registration_mails(address))
    _register(page, stack, address)
    page.goto(stack.wait_for_link(address, count=before + 1))
    page.click("#btn-read")
    expect(page.locator("h1")).to_have_text("契約者基本情報確認")
    page.click("#btn-next")
    expect(page.locator("h1")).to_have_text("添付資料再提出")


def _image(tmp: Path, name: str, size: int) -> Path:
    path = tmp / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8))
    return path


def test_register_verify_card_upload_twice_confirm_submit(
    browser: Browser, stack: PortalStack, screenshots: Path, tmp_path: Path
) -> None:
    address = "taro_kyosai@test.example.jp"
    context = _with_card(browser, stack, stack.card("taro"))
    try:
        page = context.new_page()
        page.goto(stack.url + MOUNT)
        expect(page.locator("h1")).to_have_text("メールアドレス登録")
        shot(page, screenshots, "01-register")
        page.fill("#address", address)
        page.fill("#address_again", "taro@other.example.jp")
        page.check("#consent")
        page.click("#btn-register")
        expect(page.locator("#error")).to_contain_text("一致しません")
        shot(page, screenshots, "02-register-mismatch")
        page.fill("#address_again", address)
        page.click("#btn-register")
        expect(page.locator("#sent-address")).to_have_text(address)
        expect(page.locator("body")).to_contain_text("24時間")
        shot(page, screenshots, "03-register-sent")

        link = stack.wait_for_link(address)
        page.goto(link)
        expect(page.locator("h1")).to_have_text("マイナンバーカード読み取り")
        expect(page.locator("#verified-address")).to_have_text(address)
        shot(page, screenshots, "04-card-reading")
        page.click("#btn-read")
        expect(page.locator("h1")).to_have_text("契約者基本情報確認")
        expect(page.locator("#card-name")).to_have_text("共済 太郎")
        expect(page.locator("#card-address")).to_have_text("東京都港区虎ノ門3-5-1")
        expect(page.locator("#card-birth-date")).to_have_text("1990年04月01日")
        expect(page.locator("#card-sex")).to_have_text("男性")
        shot(page, screenshots, "05-basic-information")
        page.click("#btn-next")

        expect(page.locator("h1")).to_have_text("添付資料再提出")
        page.fill("#member_number", "123456789")
        page.fill("#receipt_number", RECEIPT)
        first = [_image(tmp_path, "申込書1.png", 300_000), _image(tmp_path, "申込書2.png", 200_000)]
        page.set_input_files("#files", [str(p) for p in first])
        shot(page, screenshots, "06-form-first-round")
        page.click("#btn-upload")
        expect(page.locator(".attached-file")).to_have_count(2)
        second = _image(tmp_path, "本人確認書類.png", 150_000)
        page.set_input_files("#files", str(second))
        page.click("#btn-upload")
        expect(page.locator(".attached-file")).to_have_count(3)  # both rounds kept
        expect(page.locator("#member_number")).to_have_value("123456789")
        expect(page.locator("#receipt_number")).to_have_value(RECEIPT)
        shot(page, screenshots, "07-form-second-round")
        page.click("#btn-confirm")

        expect(page.locator("h1")).to_have_text("添付資料再提出確認")
        expect(page.locator(".summary-file")).to_have_count(3)
        expect(page.locator("#summary-receipt_number")).to_have_text(RECEIPT)
        shot(page, screenshots, "08-confirm")
        page.locator("#btn-submit").dblclick()
        expect(page.locator("h1")).to_have_text("添付資料再提出完了")
        expect(page.locator("#thanks")).to_have_text("再提出いただき、ありがとうございました。")
        receipt = page.locator("#receipt-number").inner_text()
        assert re.fullmatch(r"S0101-\d{14}-\d{5}", receipt)
        shot(page, screenshots, "09-complete")
        page.reload()  # a reload shows the page again and submits nothing
        expect(page.locator("#receipt-number")).to_have_text(receipt)

        mail = stack.wait_for_completion(address)
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert receipt in text
        subject = html.escape(str(mail["Subject"]))
        page.set_content(  # a page of its own, so axe-core has something to check too
            f"<!doctype html><html lang=ja><head><meta charset=utf-8><title>{subject}</title>"
            f"<meta name=viewport content='width=device-width'></head><body><main>"
            f"<h1>{subject}</h1><pre>{html.escape(text)}</pre></main></body></html>"
        )
        shot(page, screenshots, "10-completion-mail")
        submissions = stack.portal_rows(
            "SELECT COUNT(*) FROM portal_submissions WHERE address = ?", address
        )
        assert submissions == [(1,)]  # the double click made one
    finally:
        context.close()


def test_an_expired_link_gets_a_page_and_a_way_back(
    browser: Browser, stack: PortalStack, screenshots: Path
) -> None:
    address = "expired@test.example.jp"
    context = _with_card(browser, stack, stack.card("expired"))
    try:
        page = context.new_page()
        _register(page, stack, address)
        link = stack.wait_for_link(address)
        assert stack.expire_links(address) == 1
        page.goto(link)  # the link's page says so before any button
        expect(page.locator("h1")).to_have_text("URLの有効期限が切れています。")
        expect(page.locator("#detail")).to_contain_text("24時間")
        shot(page, screenshots, "11-link-expired")
        page.click("#btn-next")  # メールアドレスを登録し直す
        expect(page.locator("h1")).to_have_text("メールアドレス登録")
    finally:
        context.close()


def test_a_revoked_identity_certificate_is_refused_in_japanese(
    browser: Browser, stack: PortalStack, screenshots: Path
) -> None:
    card = stack.card("revoked")
    revoke(stack.card_ca, (card / "cert.pem").read_bytes())
    assert "失効" in stack.wait_until_refused(card)
    context = _with_card(browser, stack, card)
    try:
        page = context.new_page()
        page.goto(stack.url + CARD)
        expect(page.locator("body")).to_contain_text("失効")
        shot(page, screenshots, "12-card-revoked")
    finally:
        context.close()


def test_six_files_ten_megabytes_and_a_malformed_receipt_number(
    browser: Browser, stack: PortalStack, screenshots: Path, tmp_path: Path
) -> None:
    context = _with_card(browser, stack, stack.card("limits"))
    try:
        page = context.new_page()
        _to_form(page, stack, "limits@test.example.jp")
        six = [_image(tmp_path, f"{i}.png", 10_000) for i in range(MAX_FILES + 1)]
        page.fill("#member_number", "987654321")
        page.set_input_files("#files", [str(p) for p in six])
        page.click("#btn-upload")
        expect(page.locator("#error")).to_contain_text("5つまで、かつ合計10MBまで")
        expect(page.locator(".attached-file")).to_have_count(0)
        expect(page.locator("#member_number")).to_have_value("987654321")  # kept
        shot(page, screenshots, "13-six-files")

        big = _image(tmp_path, "big.png", MAX_TOTAL_BYTES + 1)
        page.set_input_files("#files", str(big))
        started = time.monotonic()
        page.click("#btn-upload")
        expect(page.locator("#error")).to_contain_text("10MB")
        print(f"10 MB + 1 byte in chromium: the 413 page after {time.monotonic() - started:.2f} s")
        expect(page.locator(".attached-file")).to_have_count(0)
        shot(page, screenshots, "14-ten-megabytes-and-one-byte")

        # Far over: the portal refuses on the declared length and the gateway relays the page
        # at once, closing the connection; the browser shows it, not a broken connection.
        huge = _image(tmp_path, "huge.png", 3 * MAX_TOTAL_BYTES)
        page.set_input_files("#files", str(huge))
        started = time.monotonic()
        page.click("#btn-upload")
        expect(page.locator("#error")).to_contain_text("5つまで、かつ合計10MBまで")
        print(f"30 MB in chromium: the 413 page after {time.monotonic() - started:.2f} s")
        expect(page.locator(".attached-file")).to_have_count(0)

        page.set_input_files("#files", str(_image(tmp_path, "ok.png", 20_000)))
        page.fill("#receipt_number", "S0101-20230231102030-12345")  # 31 February
        page.click("#btn-confirm")
        expect(page.locator("#error-receipt_number")).to_contain_text("正しい日時ではありません")
        page.fill("#receipt_number", "S0101-2023010110-12345")
        page.click("#btn-confirm")
        expect(page.locator("#error-receipt_number")).to_contain_text("S0101-")
        expect(page.locator(".attached-file")).to_have_count(1)  # the file stayed
        shot(page, screenshots, "15-malformed-receipt-number")
    finally:
        context.close()
