"""メールアドレス変更 in a real browser (SPEC D1, E4): Playwright driving Debian's chromium
with the user's client certificate — log in, the header's link to the change screen, the
address entered twice, the notice after the redirect — then the mailed link opened in a
second browser without a certificate (a phone, say): the link's page, [メールアドレスを確認する],
the completion page, and the page of the used link. Screenshots are kept in
``artifacts/screenshots/email/``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from ca_service.api import pb
from tests.browser import browser, client_certificate, driver, new_context, screenshot_dir, shot
from tests.gateway.gateway_stack import GatewayStack
from tests.smtp_sink import SmtpSink

LINK = re.compile(r"(https://\S+/email/verify\?token=[A-Za-z0-9_-]{43})\n")

pytestmark = pytest.mark.slow

__all__ = ["browser", "driver"]  # the fixtures, shared (tests/browser.py)


@pytest.fixture(scope="module")
def screenshots() -> Path:
    return screenshot_dir("email")


def test_change_address_in_the_browser(
    browser: Browser,
    gateway_stack: GatewayStack,
    smtp: SmtpSink,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    user = gateway_stack.certified_user("mailbr01", tmp_path / "cert")
    base = gateway_stack.url
    desk = new_context(browser, client_certificates=client_certificate(user.cert, base))
    phone = new_context(browser)
    try:
        page = desk.new_page()
        page.goto(base + "/login/password")
        expect(page.locator("#user_id")).to_have_value(user.user_id)
        page.fill("#password", user.password)
        page.click("#btn-submit")
        page.wait_for_url(base + "/")
        page.goto(base + "/login")  # a screen of the gateway, with the header's links
        page.click("#link-account-email")
        page.wait_for_url(base + "/account/email")
        expect(page.locator("h1")).to_have_text("メールアドレス変更")
        expect(page.locator("#current-email")).to_have_text(user.email)
        shot(page, screenshots, "01-change-form")

        new = "mailbr01.new@example.jp"
        page.fill("#email", new)
        page.fill("#email_confirm", "mailbr01.other@example.jp")
        page.click("#btn-send")
        expect(page.locator("#error")).to_contain_text("一致しません")
        shot(page, screenshots, "02-addresses-differ")
        page.fill("#email", new)
        page.fill("#email_confirm", new)
        page.click("#btn-send")
        page.wait_for_url(base + "/account/email")
        expect(page.locator("#notice")).to_contain_text("m***@example.jp へ確認用のURL")
        expect(page.locator("#current-email")).to_have_text(user.email)
        shot(page, screenshots, "03-link-sent")
        page.reload()  # after POST → redirect → GET a reload sends nothing again
        expect(page.locator("#notice")).to_have_count(0)

        (mail,) = smtp.wait_for(
            lambda m: new in str(m["To"]) and "メール認証URL" in str(m["Subject"])
        )
        match = LINK.search(mail.get_content())
        assert match, mail.get_content()
        mobile = phone.new_page()
        mobile.goto(match.group(1))
        expect(mobile.locator("h1")).to_have_text("メール認証")
        expect(mobile.locator("#verify-email")).to_have_text(new)
        shot(mobile, screenshots, "04-link-page")
        mobile.click("#btn-verify")
        mobile.wait_for_url(base + "/email/verify/done")
        expect(mobile.locator("h1")).to_have_text("メールアドレスの変更が完了しました")
        shot(mobile, screenshots, "05-changed")
        user_record = gateway_stack.operator_api().GetUser(  # type: ignore[attr-defined]
            pb.GetUserRequest(user_id=user.user_id)
        )
        assert user_record.email == new

        mobile.goto(match.group(1))
        expect(mobile.locator("h1")).to_have_text("このURLは使用済みです")
        expect(mobile.locator("#btn-new-link")).to_have_attribute("href", "/account/email")
        shot(mobile, screenshots, "06-link-used")

        page.goto(base + "/account/email")
        expect(page.locator("#current-email")).to_have_text(new)
        shot(page, screenshots, "07-changed-address")
    finally:
        desk.close()
        phone.close()
    assert len(list(screenshots.glob("*.png"))) == 7
