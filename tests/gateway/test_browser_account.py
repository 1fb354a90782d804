"""Issue 11's screens in a real browser (Playwright driving Debian's chromium): パスワード変更,
一般ユーザーの初期登録 choosing the user's own password, 認証コードの再送 (refused, then
accepted), and a master user's page with each user's certificate, a password reset shown
once and a revocation for a lost PC. Screenshots are kept in
``artifacts/screenshots/account/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from ca_service.api import pb
from tests.browser import (
    anonymous,
    browser,
    client_certificate,
    driver,
    new_context,
    screenshot_dir,
    shot,
)
from tests.gateway.gateway_stack import GatewayStack, start_gateway_stack
from tests.gateway.test_browser import _type_with_software_keyboard
from tests.smtp_sink import SmtpSink
from tests.stack_support import choose_password

__all__ = ["anonymous", "browser", "driver"]  # the fixtures, shared (tests/browser.py)

RESEND_SECONDS = 5


@pytest.fixture(scope="module")
def gateway_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, smtp: SmtpSink
) -> Iterator[GatewayStack]:
    stack = start_gateway_stack(
        tmp_path_factory.mktemp("gw-browser-account"),
        redis_server,
        smtp,
        CA_RESEND_INTERVAL_SECONDS=str(RESEND_SECONDS),
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    return screenshot_dir("account")


def _general_user(stack: GatewayStack, master: str, user_id: str) -> str:
    created = stack.gateway_api().CreateUser(  # type: ignore[attr-defined]
        pb.CreateUserRequest(acting_user_id=master, user_id=user_id, email=f"{user_id}@example.jp")
    )
    return str(created.initial_password)


def test_password_change(
    anonymous: BrowserContext, gateway_stack: GatewayStack, screenshots: Path
) -> None:
    user_id, password, _ = gateway_stack.new_user("brac0001")
    base = gateway_stack.url
    page = anonymous.new_page()
    page.goto(base + "/login")
    page.click("#link-password-change")
    page.wait_for_url(base + "/account/password")
    expect(page.locator("h1")).to_have_text("パスワード変更")
    for field in ("current_password", "new_password", "new_password_confirm"):
        expect(page.locator(f"#{field}")).to_have_attribute("autocomplete", "off")
    page.fill("#user_id", user_id)
    _type_with_software_keyboard(page, "current_password", password)
    page.fill("#new_password", "Br0wser-New!")
    page.fill("#new_password_confirm", "Br0wser-New?")
    page.click("#btn-submit")
    expect(page.locator("#error")).to_contain_text("確認用パスワードが一致しません")
    expect(page.locator("#user_id")).to_have_value(user_id)
    shot(page, screenshots, "01-password-change-mismatch")
    page.fill("#current_password", password)
    page.fill("#new_password", "Br0wser-New!")
    page.fill("#new_password_confirm", "Br0wser-New!")
    shot(page, screenshots, "02-password-change")
    page.click("#btn-submit")
    page.wait_for_url(base + "/login")
    expect(page.locator("#notice")).to_contain_text("パスワードを変更しました")
    shot(page, screenshots, "03-password-changed")
    page.reload()  # POST → redirect → GET: a reload repeats nothing and says nothing again
    expect(page.locator("#notice")).to_have_count(0)
    api = gateway_stack.gateway_api()
    assert (
        api.Login(  # type: ignore[attr-defined]
            pb.LoginRequest(user_id=user_id, password="Br0wser-New!")
        ).user_id
        == user_id
    )


def test_general_registration_with_own_password_and_code_resend(
    anonymous: BrowserContext, gateway_stack: GatewayStack, smtp: SmtpSink, screenshots: Path
) -> None:
    master, _, _ = gateway_stack.new_user("brac0002")
    given = _general_user(gateway_stack, master, "brip0002")
    email = "brip0002@example.jp"
    base = gateway_stack.url
    page = anonymous.new_page()
    page.goto(base + "/login")
    page.click("#btn-general-register")
    page.wait_for_url(base + "/enroll/auth?kind=general")
    expect(page.locator("#general-note")).to_contain_text("新しいパスワード")
    page.fill("#user_id", "brip0002")
    page.fill("#password", given)
    _type_with_software_keyboard(page, "new_password", "Ippan-Own2!")
    page.fill("#new_password_confirm", "Ippan-Own2!")
    shot(page, screenshots, "04-general-registration")
    page.click("#btn-submit")

    page.wait_for_url(base + "/enroll/code")
    expect(page.locator("#btn-resend")).to_have_text("認証コードを再送")
    page.click("#btn-resend")  # too soon
    expect(page.locator("#error")).to_contain_text("秒ほど待ってから")
    expect(page.locator("#code")).to_be_visible()
    shot(page, screenshots, "05-resend-too-soon")
    first = smtp.wait_for_code(email, 0)
    page.wait_for_timeout(RESEND_SECONDS * 1000 + 300)
    page.click("#btn-resend")
    page.wait_for_url(base + "/enroll/code")
    expect(page.locator("#notice")).to_contain_text("認証コードを再送しました")
    shot(page, screenshots, "06-resent")
    second = smtp.wait_for_code(email, 1)
    if second != first:
        page.fill("#code", first)
        page.click("#btn-submit")
        expect(page.locator("#error")).to_contain_text("認証コードが正しくありません")
    page.fill("#code", second)
    page.click("#btn-submit")
    page.wait_for_url(base + "/enroll/issue")
    expect(page.locator("#issue-user-id")).to_have_text("brip0002")


def test_master_page_certificates_reset_and_revocation(
    browser: Browser, gateway_stack: GatewayStack, screenshots: Path, tmp_path: Path
) -> None:
    master = gateway_stack.certified_user("brac0003", tmp_path / "master")
    holder = choose_password(
        gateway_stack.ca, "brip0003", _general_user(gateway_stack, master.user_id, "brip0003")
    )
    gateway_stack.issue("brip0003", holder, "brip0003@example.jp", tmp_path / "holder")
    _general_user(gateway_stack, master.user_id, "brip0004")
    base = gateway_stack.url
    context = new_context(browser, client_certificates=client_certificate(master.cert, base))
    try:
        page = context.new_page()
        page.goto(base + "/master/users")
        page.wait_for_url(re.compile(r".*/login/password.*"))
        page.fill("#password", master.password)
        page.click("#btn-submit")
        page.wait_for_url(base + "/master/users")
        holder_row = page.locator('tr[data-user-id="brip0003"]')
        expect(holder_row.locator("td.certificate")).to_have_text("有効")
        expect(holder_row.locator("td.renewal")).to_contain_text("から更新できます")
        expect(page.locator('tr[data-user-id="brip0004"] td.certificate')).to_have_text("なし")
        shot(page, screenshots, "07-master-certificates")

        page.click("#reset-brip0004")
        page.wait_for_url(base + "/master/users")
        expect(page.locator("#reset-user-id")).to_have_text("brip0004")
        expect(page.locator("#reset-password")).not_to_be_empty()
        shot(page, screenshots, "08-master-reset")
        page.reload()
        expect(page.locator("#reset-password")).to_have_count(0)  # shown once

        page.select_option("#cause-brip0003", "lost_pc")
        page.click("#revoke-brip0003")
        page.wait_for_url(base + "/master/users")
        expect(page.locator("#notice")).to_contain_text("失効しました（理由: PC紛失）")
        expect(holder_row.locator("td.certificate")).to_have_text("失効")
        expect(page.locator("#revoke-brip0003")).to_have_count(0)
        shot(page, screenshots, "09-master-revoked")
    finally:
        context.close()
