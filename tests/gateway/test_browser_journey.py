"""Issue 11 in a real browser (Playwright driving Debian's chromium, as ``test_browser``):
the answer to [発行] lost on its way and the reload that follows, Back from 発行結果, the
reload of a master user's "general user created" page and of a refused login, the portal's
ログアウト for a general user, and a deep link that survives the login. Screenshots are
kept in ``artifacts/screenshots/journey/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Download, Page, Route, expect

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
from tests.gateway.gateway_stack import GatewayStack
from tests.smtp_sink import SmtpSink
from tests.stack_support import choose_password
from tests.support import open_pkcs12

__all__ = ["anonymous", "browser", "driver"]  # the fixtures, shared (tests/browser.py)


@pytest.fixture(scope="module")
def journey_shots() -> Path:
    """A directory of its own: ``test_browser`` clears the top level when it starts."""
    return screenshot_dir("journey")


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    """Browser contexts a test opens (with client certificates); all closed afterwards."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def _with_certificate(
    browser: Browser,
    contexts: list[BrowserContext],
    base: str,
    certificate: Path,
) -> BrowserContext:
    context = new_context(browser, client_certificates=client_certificate(certificate, base))
    contexts.append(context)
    return context


def _log_in(page: Page, base: str, user_id: str, password: str) -> None:
    """ログイン from wherever the gateway sent the page (its deep link kept)."""
    expect(page.locator("h1")).to_have_text("ログイン")
    expect(page.locator("#user_id")).to_have_value(user_id)
    page.fill("#password", password)
    page.click("#btn-submit")


def test_a_lost_answer_to_issue_then_reload_and_back(
    anonymous: BrowserContext,
    gateway_stack: GatewayStack,
    smtp: SmtpSink,
    journey_shots: Path,
    tmp_path: Path,
) -> None:
    user_id, password, email = gateway_stack.new_user("tabiweb1")
    base = gateway_stack.url
    page = anonymous.new_page()
    downloads: list[Download] = []
    page.on("download", lambda download: downloads.append(download))

    page.goto(base + "/enroll/auth")
    page.fill("#user_id", user_id)
    page.fill("#password", password)
    before = len(smtp.code_mails(email))
    page.click("#btn-submit")
    page.wait_for_url(base + "/enroll/code")
    page.fill("#code", smtp.wait_for_code(email, before))
    page.click("#btn-submit")
    page.wait_for_url(base + "/enroll/issue")

    # [発行]: the gateway issues, but its answer never reaches the browser.
    answered: list[int] = []

    def lose_the_answer(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        response = route.fetch(max_redirects=0)  # the gateway did its work ...
        answered.append(response.status)
        route.abort("connectionreset")  # ... and the browser never hears of it

    page.route(base + "/enroll/issue", lose_the_answer)
    page.click("#btn-issue", no_wait_after=True)
    while not answered:
        page.wait_for_timeout(20)
    page.unroute(base + "/enroll/issue")
    assert answered == [303]
    page.wait_for_timeout(500)
    shot(page, journey_shots, "01-issue-answer-lost")
    assert downloads == []

    # The user reloads: chromium sends the form again; the answer is 発行結果, not "expired",
    # and the download starts.
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    with page.expect_download() as started:
        page.reload()
        page.wait_for_url(base + "/enroll/result")
    assert posts == [base + "/enroll/issue"], posts
    expect(page.locator("h1")).to_have_text("電子証明書発行結果")
    expect(page.locator("body")).not_to_contain_text("認証の有効期限が切れました")
    p12 = tmp_path / started.value.suggested_filename
    started.value.save_as(p12)
    assert re.fullmatch(re.escape(user_id) + r"\d{14}\.p12", p12.name)
    expect(page.locator("#result-file-name")).to_have_text(p12.name)
    assert open_pkcs12(p12, password, check=False).returncode == 0
    shot(page, journey_shots, "02-reload-shows-the-result")

    # Back from 発行結果: the page says where the user is, without a second [発行].
    page.go_back()
    page.wait_for_url(base + "/enroll/issue")
    expect(page.locator("h1")).to_have_text("電子証明書発行済み")
    expect(page.locator("#issued-lead")).to_contain_text("この画面から再度発行することはできません")
    expect(page.locator("#btn-issue")).to_have_count(0)
    expect(page.locator("#issued-download")).to_be_visible()
    shot(page, journey_shots, "03-back-from-the-result")

    # Back to 電子証明書発行 from the menu: the certificate was issued; the file still waits.
    page.goto(base + "/login")
    page.click("#btn-issue")
    page.wait_for_url(base + "/enroll/auth")
    expect(page.locator("#issued-waits")).to_contain_text(
        f"ユーザーID {user_id} の電子証明書は発行済みです"
    )
    expect(page.locator("#download-until")).to_have_text(
        re.compile(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d")
    )
    shot(page, journey_shots, "04-menu-issue-offers-the-file")
    with page.expect_download() as again:
        page.click("#issued-download")
    assert again.value.suggested_filename == p12.name
    assert Path(again.value.path()).read_bytes() == p12.read_bytes()

    # ユーザー認証 again: "already issued" says what to do.
    page.goto(base + "/enroll/auth")
    page.fill("#user_id", user_id)
    page.fill("#password", password)
    page.click("#btn-submit")
    page.wait_for_url(base + "/enroll/auth")
    expect(page.locator("#error")).to_contain_text("既に電子証明書が発行されているため")
    expect(page.locator("#error")).to_contain_text("失効を依頼したうえで、再発行してください")
    shot(page, journey_shots, "05-already-issued-says-what-to-do")


def test_reloads_neither_lose_nor_repeat_and_everyone_can_log_out(
    browser: Browser,
    contexts: list[BrowserContext],
    gateway_stack: GatewayStack,
    journey_shots: Path,
    tmp_path: Path,
) -> None:
    base = gateway_stack.url
    master = gateway_stack.certified_user("tabiweb2", tmp_path / "master")
    page = _with_certificate(browser, contexts, base, master.cert).new_page()

    # A deep link of the master page survives the login.
    page.goto(base + "/master/users")
    page.wait_for_url(base + "/login/password?next=/master/users")
    _log_in(page, base, master.user_id, master.password)
    page.wait_for_url(base + "/master/users")

    # 一般ユーザーの登録, then a reload of the page that shows the initial password.
    page.fill("#new_user_id", "ippanweb2")
    page.fill("#new_email", "ippanweb2@example.jp")
    page.click("#btn-create")
    page.wait_for_url(base + "/master/users/created")
    initial = page.inner_text("#created-password").strip()
    assert initial
    page.reload()
    expect(page.locator("#created-password")).to_have_text(initial)
    expect(page.locator("#error")).to_have_count(0)  # not "already used": nothing re-sent
    shot(page, journey_shots, "06-created-reloaded")
    page.click("#btn-created-seen")
    page.wait_for_url(base + "/master/users")
    expect(page.locator('tr[data-user-id="ippanweb2"]')).to_have_count(1)
    expect(page.locator("body")).not_to_contain_text(initial)

    # The general user replaces the given password with its own (一般ユーザーの初期登録),
    # gets a certificate and opens a deep link: a wrong password, a reload of the refusal
    # (the password is not checked again), then the right one.
    password = choose_password(gateway_stack.ca, "ippanweb2", initial)
    general = gateway_stack.issue(
        "ippanweb2", password, "ippanweb2@example.jp", tmp_path / "general"
    )
    page = _with_certificate(browser, contexts, base, general).new_page()
    page.goto(base + "/echo?from=mail")
    page.wait_for_url(base + "/login/password?next=/echo%3Ffrom%3Dmail")
    _log_in(page, base, "ippanweb2", "Wr0ng-Pass!")
    page.wait_for_url(base + "/login/password?next=/echo%3Ffrom%3Dmail")
    expect(page.locator("#error")).to_contain_text("ユーザーIDまたはパスワードが正しくありません")
    shot(page, journey_shots, "07-deep-link-wrong-password")
    page.reload()
    expect(page.locator("#error")).to_have_count(0)
    shown = gateway_stack.operator_api().GetUser(  # type: ignore[attr-defined]
        pb.GetUserRequest(user_id="ippanweb2")
    )
    assert shown.consecutive_failures == 1, "a reload must not repeat the refused login"
    _log_in(page, base, "ippanweb2", password)
    page.wait_for_url(base + "/echo?from=mail")
    assert "ippanweb2" in page.inner_text("body")

    # The portal, for a general user too, offers ログアウト; it ends the session.
    page.goto(base + "/")
    expect(page.locator("#greeting")).to_have_text("ようこそ、ippanweb2 さん")
    expect(page.locator("#logout")).to_have_text("ログアウト")
    shot(page, journey_shots, "08-portal-logout-button")
    page.click("#logout")
    page.wait_for_url(base + "/login")
    expect(page.locator("#notice")).to_have_text("ログアウトしました。")
    shot(page, journey_shots, "09-logged-out")
    page.goto(base + "/")
    page.wait_for_url(base + "/login/password")
    expect(page.locator("#greeting")).to_have_count(0)
