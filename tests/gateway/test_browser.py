"""The end-user screens in a real browser (SPEC B1, B2, B8, C4, C4a, E1, E4, E5): Playwright
driving Debian's chromium through certificate issuance — login menu, ユーザー認証 with the
software keyboard, the code from the mail, [発行], 発行中, 発行結果 and the .p12 download —
then a second browser context that presents the downloaded PKCS#12 logs in and reaches the
upstream. Screenshots of every screen are kept in ``artifacts/screenshots/``."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Download,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from tests.gateway.gateway_stack import GatewayStack
from tests.smtp_sink import SmtpSink, code_from

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
TIMEOUT_MS = 15_000
JAPAN = ZoneInfo("Asia/Tokyo")


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (Debian package chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the browser test")
        pytest.skip(message)
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="module")
def browser(driver: Playwright) -> Iterator[Browser]:
    launched = driver.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):  # no stale screens from an earlier run
        old.unlink()
    return SCREENSHOTS


def _context(browser: Browser, **options: object) -> BrowserContext:
    # The gateway's server certificate is from our own CA, which chromium does not trust.
    context = browser.new_context(
        ignore_https_errors=True,
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        viewport={"width": 1100, "height": 900},
        accept_downloads=True,
        **options,  # type: ignore[arg-type]
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def anonymous(browser: Browser) -> Iterator[BrowserContext]:
    """A browser context without a client certificate (a user before issuance)."""
    context = _context(browser)
    yield context
    context.close()


# -- helpers -------------------------------------------------------------------------------


def _shot(page: Page, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _type_with_software_keyboard(page: Page, field: str, text: str) -> None:
    """Types ``text`` into #field only by clicking the on-screen keyboard (SPEC B8)."""
    page.click(f"#kbd-toggle-{field}")
    expect(page.locator(f"#kbd-{field}")).to_be_visible()
    expect(page.locator(f"#kbd-toggle-{field}")).to_have_attribute("aria-expanded", "true")
    shifted = False
    for char in text:
        if char.isascii() and char.isalpha() and char.isupper() != shifted:
            page.click("#kbd-shift")
            shifted = not shifted
            expect(page.locator("#kbd-shift")).to_have_attribute(
                "aria-pressed", "true" if shifted else "false"
            )
        page.click(f"button.kbd-key[data-key={_css_string(char)}]")
    if shifted:
        page.click("#kbd-shift")


def _code_mails(smtp: SmtpSink, email: str) -> list[EmailMessage]:
    return [m for m in smtp.to(email) if "認証コード" in str(m["Subject"])]


def _wait_for_code(smtp: SmtpSink, email: str, before: int) -> str:
    mails = smtp.wait_for(
        lambda m: email in str(m["To"]) and "認証コード" in str(m["Subject"]), count=before + 1
    )
    return code_from(mails[-1])


def _openssl_pkcs12(p12: Path, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "pkcs12", "-in", str(p12), "-passin", f"pass:{password}", "-noenc"],
        capture_output=True,
        text=True,
        timeout=30,
    )


# Installed on 電子証明書発行: when #issue-form is submitted, reports what is shown once
# issue.js's submit handler ran (a window listener runs after the form's own).
_REPORT_ISSUING = """() => window.addEventListener("submit", (event) => {
  if (event.target.id !== "issue-form") return;
  const visible = (id) => {
    const el = document.getElementById(id);
    return !!el && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  };
  window.reportIssuing({
    issuing: visible("issuing"),
    form: visible("issue-section"),
    heading: document.querySelector("#issuing h2").textContent.trim(),
    button_disabled: document.getElementById("btn-issue").disabled,
    title: document.title,
  });
})"""

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----\n.*?\n-----END \1-----\n", re.S)


# -- the whole journey ---------------------------------------------------------------------


def test_issue_download_and_log_in_with_the_certificate(
    browser: Browser,
    anonymous: BrowserContext,
    gateway_stack: GatewayStack,
    smtp: SmtpSink,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    user_id, password, email = gateway_stack.new_user("browser1")
    base = gateway_stack.url
    page = anonymous.new_page()
    downloads: list[Download] = []
    page.on("download", lambda download: downloads.append(download))

    # ログイン (menu): four buttons, no certificate selected.
    page.goto(base + "/login")
    expect(page).to_have_title(re.compile(r"^ログイン \| "))
    for button, label in (
        ("#btn-login", "ログイン"),
        ("#btn-master-register", "マスターユーザーの初期登録"),
        ("#btn-general-register", "一般ユーザーの初期登録"),
        ("#btn-issue", "電子証明書発行"),
    ):
        expect(page.locator(button)).to_have_text(label)
    expect(page.locator("#certificate-user")).to_have_count(0)
    _shot(page, screenshots, "01-login")

    # ユーザー認証: the password only through the software keyboard.
    page.click("#btn-issue")
    page.wait_for_url(base + "/enroll/auth")
    expect(page.locator("h1")).to_have_text("電子証明書発行 ユーザー認証")
    expect(page.locator("#password")).to_have_attribute("autocomplete", "off")
    expect(page.locator("#btn-cancel")).to_have_text("キャンセル")
    expect(page.locator("#btn-submit")).to_have_text("認証")
    page.fill("#user_id", user_id)
    _type_with_software_keyboard(page, "password", password)
    assert page.input_value("#password") == password
    _shot(page, screenshots, "02-auth-keyboard")

    before = len(_code_mails(smtp, email))
    page.click("#btn-submit")

    # 認証コード入力: the code from the mail that aiosmtpd captured.
    page.wait_for_url(base + "/enroll/code")
    expect(page.locator("h1")).to_have_text("認証コード入力")
    expect(page.locator("#masked-email")).to_have_text(f"{email[0]}***@{email.split('@')[1]}")
    expect(page.locator("#code")).to_have_attribute("autocomplete", "one-time-code")
    code = _wait_for_code(smtp, email, before)
    page.fill("#code", code)
    _shot(page, screenshots, "03-code")
    page.click("#btn-submit")

    # 電子証明書発行 [発行]; the POST is held back so that 発行中 can be seen.
    page.wait_for_url(base + "/enroll/issue")
    expect(page.locator("#issue-section h1")).to_have_text("電子証明書発行")
    expect(page.locator("#issue-user-id")).to_have_text(user_id)
    expect(page.locator("#issuing")).to_be_hidden()
    _shot(page, screenshots, "04-issue")

    # While the form's navigation is held, Playwright's locators, evaluate and screenshot
    # wait for it to finish (and chromium defers Runtime commands to the old document until
    # the new one commits); the browser-side Page.captureScreenshot still captures what is
    # shown. The page's own state right after the submit handlers ran is reported through
    # a binding by a listener on window.
    held: list[Route] = []
    reported: list[dict[str, object]] = []

    def hold_issue(route: Route) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.expose_function("reportIssuing", lambda state: reported.append(state))
    page.evaluate(_REPORT_ISSUING)
    page.route(base + "/enroll/issue", hold_issue)
    page.click("#btn-issue", no_wait_after=True)
    while not (held and reported):
        page.wait_for_timeout(20)
    page.wait_for_timeout(300)  # let the 発行中 screen be painted
    devtools = anonymous.new_cdp_session(page)
    shot = devtools.send("Page.captureScreenshot", {"format": "png"})
    (screenshots / "05-issuing.png").write_bytes(base64.b64decode(shot["data"]))
    assert reported == [
        {
            "issuing": True,
            "form": False,
            "heading": "電子証明書発行中",
            "button_disabled": True,
            "title": reported[0]["title"],
        }
    ]
    assert str(reported[0]["title"]).startswith("電子証明書発行中 | ")

    # 発行結果: the download starts by itself, once.
    with page.expect_download() as started:
        held[0].continue_()
        page.wait_for_url(base + "/enroll/result")
    page.unroute(base + "/enroll/issue")
    devtools.detach()
    download = started.value
    expect(page.locator("h1")).to_have_text("電子証明書発行結果")
    name = download.suggested_filename
    stamp = re.fullmatch(re.escape(user_id) + r"(\d{14})\.p12", name)
    assert stamp, name
    issued_at = datetime.strptime(stamp.group(1), "%Y%m%d%H%M%S").replace(tzinfo=JAPAN)
    assert abs((datetime.now(JAPAN) - issued_at).total_seconds()) < 120  # Japan time (C4)
    expect(page.locator("#result-user-id")).to_have_text(user_id)
    expect(page.locator("#result-file-name")).to_have_text(name)
    expect(page.locator("a#download")).to_have_attribute("download", name)
    assert download.failure() is None
    p12 = tmp_path / name
    download.save_as(p12)
    # An ordinary download (E5): the answer itself names the file.
    again = anonymous.request.get(base + "/enroll/download")
    assert again.status == 200
    assert again.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert again.headers["content-type"] == "application/x-pkcs12"
    assert again.body() == p12.read_bytes()
    _shot(page, screenshots, "06-result")
    page.reload()
    expect(page.locator("#result-file-name")).to_have_text(name)
    page.wait_for_timeout(1000)  # the auto-start runs 300 ms after load
    assert len(downloads) == 1, "a reload of 発行結果 must not download again"
    assert anonymous.pages == [page], "no pop-up windows (E5)"

    # openssl opens the file with the login password; the key belongs to the certificate.
    opened = _openssl_pkcs12(p12, password)
    assert opened.returncode == 0, opened.stderr
    blocks = {m.group(1): m.group(0) for m in _PEM_BLOCK.finditer(opened.stdout)}
    assert set(blocks) >= {"CERTIFICATE", "PRIVATE KEY"}, opened.stdout
    certificates = [
        x509.load_pem_x509_certificate(m.group(0).encode())
        for m in _PEM_BLOCK.finditer(opened.stdout)
        if m.group(1) == "CERTIFICATE"
    ]
    key = load_pem_private_key(blocks["PRIVATE KEY"].encode(), None)
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    (certificate,) = [
        c
        for c in certificates
        if c.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == spki
    ]
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in common_names] == [user_id]
    assert f"CN={user_id}" in certificate.subject.rfc4514_string()
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert _openssl_pkcs12(p12, password + "x").returncode != 0

    # A second context presents the downloaded PKCS#12 and logs in with the password.
    with_certificate = _context(
        browser,
        client_certificates=[{"origin": base, "pfxPath": str(p12), "passphrase": password}],
    )
    try:
        portal = with_certificate.new_page()
        portal.goto(base + "/login")
        expect(portal.locator("#certificate-user")).to_have_text(user_id)
        _shot(portal, screenshots, "07-login-with-certificate")
        portal.click("#btn-login")
        portal.wait_for_url(base + "/login/password")
        expect(portal.locator("h1")).to_have_text("ログイン")
        expect(portal.locator("#user_id")).to_have_value(user_id)
        _type_with_software_keyboard(portal, "password", password)
        _shot(portal, screenshots, "08-login-password")
        portal.click("#btn-submit")
        portal.wait_for_url(base + "/")
        expect(portal.locator("#greeting")).to_have_text(f"ようこそ、{user_id} さん")
        expect(portal.locator("#organization")).to_have_text(f"{user_id} 株式会社")
        expect(portal.locator("#organization-id")).not_to_be_empty()
        _shot(portal, screenshots, "09-greeting")
    finally:
        with_certificate.close()

    # Without a certificate the portal is out of reach: / leads back to the login menu.
    page.goto(base + "/")
    assert page.url == base + "/login"
    expect(page.locator("#greeting")).to_have_count(0)


# -- smaller checks ------------------------------------------------------------------------


def test_wrong_password_is_refused_without_revealing_the_user(
    anonymous: BrowserContext, gateway_stack: GatewayStack, smtp: SmtpSink, screenshots: Path
) -> None:
    user_id, password, email = gateway_stack.new_user("browser2")
    wrong = "Wr0ng-Pass!"
    assert wrong != password
    base = gateway_stack.url
    page = anonymous.new_page()
    before = len(_code_mails(smtp, email))
    answers: list[str] = []
    for candidate in (user_id, "nobody99"):
        page.goto(base + "/enroll/auth")
        page.fill("#user_id", candidate)
        page.fill("#password", wrong)
        page.click("#btn-submit")
        page.wait_for_url(base + "/enroll/auth")
        expect(page.locator("#error")).to_contain_text(
            "ユーザーIDまたはパスワードが正しくありません"
        )
        expect(page.locator("#user_id")).to_have_value(candidate)
        expect(page.locator("#password")).to_have_value("")
        answers.append(page.inner_text("#error"))
    assert answers[0] == answers[1]  # SPEC B9
    _shot(page, screenshots, "10-auth-wrong-password")
    assert len(_code_mails(smtp, email)) == before


def test_cancel_returns_to_the_login_menu(
    anonymous: BrowserContext, gateway_stack: GatewayStack
) -> None:
    base = gateway_stack.url
    page = anonymous.new_page()
    page.goto(base + "/enroll/auth")
    page.click("#btn-cancel")
    page.wait_for_url(base + "/login")
    expect(page.locator("#btn-issue")).to_be_visible()


def test_portal_without_certificate_redirects_to_login(
    anonymous: BrowserContext, gateway_stack: GatewayStack
) -> None:
    base = gateway_stack.url
    page = anonymous.new_page()
    for path in ("/", "/echo"):
        response = page.goto(base + path)
        assert response is not None and response.ok
        assert page.url == base + "/login", path
        expect(page.locator("#greeting")).to_have_count(0)
    page.goto(base + "/login/password")
    expect(page.locator("#error")).to_contain_text("ログインには電子証明書が必要です")
