"""What a demo user sees, through curl, a real gateway, CA, Redis and aiosmtpd: a form that
comes back with an error keeps what was typed (never a password), and the end of a lock
reads the same minute on the screen, in the lock mail, on the master user's page and in
``ca-admin user show``."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from ca_service.api import pb
from tests.gateway.curl import Client, csrf_token, logged_in_master
from tests.gateway.gateway_stack import GatewayStack
from tests.smtp_sink import SmtpSink
from tests.support import run, tool

pytestmark = pytest.mark.slow

PASSWORD = "Kirin-2026!"
WRONG = "Wrong-pass9!"
_TIME = r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d"


def _value(body: str, field_id: str) -> str | None:
    """The value attribute of the input with ``field_id`` (None when it has none)."""
    tag = re.search(rf'<input[^>]*\bid="{field_id}"[^>]*>', body)
    assert tag, f"no #{field_id} in {body}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else None


def test_refused_forms_keep_what_was_typed_but_never_a_password(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    created = gateway_stack.operator_api().CreateOrganization(  # type: ignore[attr-defined]
        pb.CreateOrganizationRequest(name="入力保持株式会社")
    )
    organization_id = created.organization.organization_id
    client = Client(gateway_stack, tmp_path)

    # マスターユーザー初期登録ログイン: the organisation ID stays, the initial password not.
    token = csrf_token(client("/register/master")[2])
    refused = client.post(
        "/register/master", csrf=token, organization_id=organization_id, initial_password=WRONG
    )
    status, _, body = client.follow(refused, "/register/master")
    assert status == 200 and 'id="error"' in body
    assert _value(body, "organization_id") == organization_id
    assert _value(body, "initial_password") is None and WRONG not in body

    # マスターユーザー初期登録: user ID and both e-mail fields stay; neither password does.
    status, _, _ = client.post(
        "/register/master",
        csrf=token,
        organization_id=organization_id,
        initial_password=created.initial_password,
    )
    assert status == 303
    token = csrf_token(client("/register/master/account")[2])
    typed = {
        "user_id": "hoji0001",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "email": "hoji0001@example.jp",
        "email_confirm": "hoji0002@example.jp",  # differs: refused
    }
    refused = client.post("/register/master/account", csrf=token, **typed)
    status, _, body = client.follow(refused, "/register/master/account")
    assert status == 200 and "メールアドレスと確認用メールアドレスが一致しません" in body
    assert _value(body, "user_id") == "hoji0001"
    assert _value(body, "email") == "hoji0001@example.jp"
    assert _value(body, "email_confirm") == "hoji0002@example.jp"
    assert _value(body, "password") is None and _value(body, "password_confirm") is None
    assert PASSWORD not in body and html.escape(PASSWORD) not in body
    # A refusal by the CA (a user ID against A2) keeps them too.
    typed |= {"user_id": "short", "email_confirm": "hoji0001@example.jp"}
    refused = client.post("/register/master/account", csrf=token, **typed)
    status, _, body = client.follow(refused, "/register/master/account")
    assert status == 200 and 'id="error"' in body
    assert _value(body, "user_id") == "short"
    assert _value(body, "email_confirm") == "hoji0001@example.jp"
    assert PASSWORD not in body and html.escape(PASSWORD) not in body

    # ユーザー認証: the user ID stays, the password not.
    refused = client.authenticate(smtp, "hoji0009", WRONG, "x")
    status, _, body = client.follow(refused, "/enroll/auth")
    assert status == 200 and "ユーザーIDまたはパスワードが正しくありません" in body
    assert _value(body, "user_id") == "hoji0009"
    assert _value(body, "password") is None and WRONG not in body


def test_the_master_page_keeps_a_refused_new_user(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    master, client = logged_in_master(gateway_stack, "hoji0100", tmp_path)
    # ログイン with a wrong password first: the user ID stays, the password not.
    refused = client.post(
        "/login/password",
        csrf=client.csrf("/login/password"),
        user_id=master.user_id,
        password=WRONG,
    )
    status, _, body = client.follow(refused, "/login/password")
    assert status == 200 and 'id="error"' in body
    assert _value(body, "user_id") == master.user_id and WRONG not in body
    client.login(master.user_id, master.password)
    status, _, body = client("/master/users")
    assert status == 200
    refused = client.post(
        "/master/users/new", csrf=csrf_token(body), user_id="x1", email="x1@example.jp"
    )
    status, _, body = client.follow(refused, "/master/users")
    assert status == 200 and 'id="error"' in body
    assert _value(body, "new_user_id") == "x1"
    assert _value(body, "new_email") == "x1@example.jp"
    assert 'id="created"' not in body


def test_a_lock_ends_at_the_same_minute_on_the_screen_in_the_mail_and_for_the_master(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    _, master_client = logged_in_master(gateway_stack, "hoji0200", tmp_path)
    status, _, body = master_client("/master/users")
    created = master_client.post(
        "/master/users/new", csrf=csrf_token(body), user_id="ippan201", email="ippan201@example.jp"
    )
    status, _, body = master_client.follow(created, "/master/users/created")
    assert status == 200 and 'id="created"' in body

    client = Client(gateway_stack, tmp_path)
    for _ in range(6):
        status, _, body = client.follow(
            client.authenticate(smtp, "ippan201", WRONG, "x"), "/enroll/auth"
        )
        assert status == 200 and 'id="error"' in body
    on_screen = re.search(rf"ロックは({_TIME})（日本時間）に解除されます", body)
    assert on_screen, body

    (mail,) = smtp.wait_for(
        lambda m: "ippan201@example.jp" in str(m["To"]) and "ロック" in str(m["Subject"])
    )
    in_mail = re.search(rf"ロック状態は({_TIME})に自動的に解除", mail.get_content())
    assert in_mail, mail.get_content()

    _, _, page = master_client("/master/users")
    row = re.search(r'data-user-id="ippan201".*?</tr>', page, re.S)
    assert row, page
    for_master = re.search(rf"（({_TIME}) 解除）", row.group(0))
    assert for_master, row.group(0)

    assert on_screen.group(1) == in_mail.group(1) == for_master.group(1)

    # The operator's ca-admin names the same minute (in its own notation).
    env = {**gateway_stack.ca.env, "CA_GRPC_ADDRESS": gateway_stack.ca.servers[0].address}
    shown = run([tool("ca-admin"), "user", "show", "ippan201"], env).stdout
    operator = re.search(r"until (\d{4})-(\d\d)-(\d\d) (\d\d:\d\d) JST", shown)
    assert operator, shown
    year, month, day, minute = operator.groups()
    assert f"{year}年{int(month)}月{int(day)}日 {minute}" == on_screen.group(1)
