"""メールアドレス変更 and the link's page (SPEC D1) driven with curl through a real gateway,
CA, Redis and aiosmtpd: the form (twice the address, PRG), the mail with the link, the
link's page (its state before the button, the address changed only by the button), the
pages for a used, expired and unknown link with the way to a new one, the old address
told; no token in any log."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from email.message import EmailMessage
from pathlib import Path

import pytest

from ca_service.api import pb
from tests.gateway.curl import Client, csrf_token
from tests.gateway.gateway_stack import GatewayStack
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow

TOKEN = re.compile(r"(https://[^\s?]+/email/verify)\?token=([A-Za-z0-9_-]{43})\n")


def _link_mail(smtp: SmtpSink, address: str, count: int = 1) -> EmailMessage:
    return smtp.wait_for(
        lambda m: address in str(m["To"]) and "メール認証URL" in str(m["Subject"]), count=count
    )[-1]


def _link(message: EmailMessage) -> tuple[str, str]:
    match = TOKEN.search(message.get_content())
    assert match, message.get_content()
    return match.group(1), match.group(2)


def _current_email(stack: GatewayStack, user_id: str) -> str:
    user = stack.operator_api().GetUser(pb.GetUserRequest(user_id=user_id))  # type: ignore[attr-defined]
    return str(user.email)


def test_change_address_through_the_mailed_link(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    user = gateway_stack.certified_user("mailgw01", tmp_path / "cert")
    client = Client(gateway_stack, tmp_path, user.cert)
    # Not logged in yet: the change screen sends the user to ログイン first.
    status, headers, _ = client("/account/email")
    assert status == 303 and headers["location"] == "/login/password?next=/account/email"
    status, headers, _ = client.login(user.user_id, user.password, next_path="/account/email")
    assert status == 303 and headers["location"] == "/account/email"
    status, _, body = client("/account/email")
    assert status == 200 and "メールアドレス変更" in body
    assert f'id="current-email">{user.email}<' in body
    assert "24時間以内" in body and 'id="email_confirm"' in body
    token = csrf_token(body)

    new = "mailgw01.new@example.jp"
    refused = client.post("/account/email", csrf=token, email=new, email_confirm="x" + new)
    status, _, body = client.follow(refused, "/account/email")
    assert status == 200 and "確認用メールアドレスが一致しません" in body
    assert f'value="{new}"' in body  # what was typed stays
    refused = client.post("/account/email", csrf=token, email=user.email, email_confirm=user.email)
    status, _, body = client.follow(refused, "/account/email")
    assert status == 200 and "現在登録されているメールアドレスと同じ" in body
    status, headers, _ = client.post("/account/email", csrf=token, email=new, email_confirm=new)
    assert status == 303 and headers["location"] == "/account/email"  # POST → redirect → GET
    status, _, body = client("/account/email")
    assert status == 200 and "m***@example.jp へ確認用のURLを記載したメールを送信しました" in body
    assert f'id="current-email">{user.email}<' in body  # not before the link is opened
    status, _, body = client("/account/email")
    assert "送信しました" not in body  # the notice is shown once

    base, link_token = _link(_link_mail(smtp, new))
    assert base == f"{gateway_stack.url}/email/verify"
    # The link opens on any browser, with or without a certificate.
    browser = Client(gateway_stack, tmp_path / "phone")
    (tmp_path / "phone").mkdir()
    for _ in range(2):  # looking does not use it up
        status, headers, body = browser(f"/email/verify?token={link_token}")
        assert status == 200 and f'id="verify-email">{new}<' in body
        assert headers["referrer-policy"] == "no-referrer"
    assert _current_email(gateway_stack, user.user_id) == user.email
    verify_csrf = csrf_token(body)
    status, headers, _ = browser.post("/email/verify", csrf=verify_csrf, token=link_token)
    assert status == 303 and headers["location"] == "/email/verify/done"
    status, _, body = browser("/email/verify/done")
    assert status == 200 and "メールアドレスの変更が完了しました" in body
    assert 'data-verified="yes"' in body and new in body
    assert _current_email(gateway_stack, user.user_id) == new
    status, headers, _ = browser("/email/verify/done")  # reloaded: shown once
    assert status == 303 and headers["location"] == "/login"
    notice = smtp.wait_for(
        lambda m: user.email in str(m["To"]) and "変更のお知らせ" in str(m["Subject"])
    )
    assert "m***@example.jp" in notice[0].get_content()

    # Used: the page says so and shows the way to a new link.
    status, _, body = browser(f"/email/verify?token={link_token}")
    assert status == 410 and "このURLは使用済みです" in body and "一度だけ有効" in body
    assert 'id="btn-new-link" href="/account/email"' in body
    # The same when two tabs had the page open and both pressed the button.
    status, headers, _ = browser.post("/email/verify", csrf=verify_csrf, token=link_token)
    assert status == 303
    status, _, body = browser(headers["location"])
    assert status == 410 and "このURLは使用済みです" in body
    # Unknown.
    status, _, body = browser(f"/email/verify?token={'A' * 43}")
    assert status == 404 and "URLが正しくありません" in body
    status, _, body = browser("/email/verify")
    assert status == 404 and 'id="btn-new-link"' in body

    # Expired: a new request (its link is past its 24 hours in the store).
    client.post("/account/email", csrf=token, email=user.email, email_confirm=user.email)
    _, old_token = _link(_link_mail(smtp, user.email))
    database = sqlite3.connect(gateway_stack.ca.data_dir / "ca.db")
    try:
        with database:
            # Made 24 hours and a second ago.
            changed = database.execute(
                "UPDATE email_verifications SET created_at = created_at - 86401,"
                " expires_at = expires_at - 86401 WHERE token_hash = ?",
                (hashlib.sha256(old_token.encode()).hexdigest(),),
            ).rowcount
    finally:
        database.close()
    assert changed == 1
    status, _, body = browser(f"/email/verify?token={old_token}")
    assert status == 410 and "URLの有効期限が切れています" in body and "24時間" in body
    assert _current_email(gateway_stack, user.user_id) == new

    # No token in any log: the gateway's access log records paths, never queries.
    logs = gateway_stack.gateways[0].log() + "".join(
        path.read_text(errors="replace") for path in gateway_stack.ca.logs
    )
    assert '"path": "/email/verify"' in logs or '"path":"/email/verify"' in logs
    assert link_token not in logs and old_token not in logs


def test_the_change_screen_needs_the_certificate(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    status, _, body = Client(gateway_stack, tmp_path)("/account/email")
    assert status == 403 and "電子証明書が必要です" in body
    status, _, body = Client(gateway_stack, tmp_path).post(
        "/account/email", csrf="x", email="a@example.jp", email_confirm="a@example.jp"
    )
    assert status == 403 and "有効期限が切れました" in body  # no session, no CSRF token
