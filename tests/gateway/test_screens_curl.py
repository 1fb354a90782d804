"""The screens of seed 000 driven with curl through a real gateway, CA, Redis and aiosmtpd:
master user initial registration, certificate issuance to the .p12 download, the messages
for wrong codes, locks and ALREADY_ISSUED, and a master user's page (register, unlock)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ca_service.api import pb
from tests.gateway.curl import Client, csrf_token, logged_in_master
from tests.gateway.gateway_stack import GatewayStack
from tests.smtp_sink import SmtpSink, code_from
from tests.support import open_pkcs12

pytestmark = pytest.mark.slow

PASSWORD = "Kirin-2026!"


def test_master_registration_then_issuance_to_the_p12_download(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    created = gateway_stack.operator_api().CreateOrganization(  # type: ignore[attr-defined]
        pb.CreateOrganizationRequest(name="画面テスト株式会社")
    )
    organization_id = created.organization.organization_id
    client = Client(gateway_stack, tmp_path)
    # マスターユーザー初期登録: a wrong initial password is refused on the first screen.
    token = csrf_token(client("/register/master")[2])
    refused = client.post(
        "/register/master",
        csrf=token,
        organization_id=organization_id,
        initial_password="wrong-initial",
    )
    status, _, body = client.follow(refused, "/register/master")
    assert status == 200 and "初期パスワードが正しくない" in body
    assert f'value="{organization_id}"' in body and "wrong-initial" not in body
    status, headers, _ = client.post(
        "/register/master",
        csrf=token,
        organization_id=organization_id,
        initial_password=created.initial_password,
    )
    assert status == 303 and headers["location"] == "/register/master/account"
    token = csrf_token(client("/register/master/account")[2])
    fields = {
        "user_id": "gamen001",
        "password": PASSWORD,
        "password_confirm": PASSWORD + "x",
        "email": "gamen001@example.jp",
        "email_confirm": "gamen001@example.jp",
    }
    refused = client.post("/register/master/account", csrf=token, **fields)
    status, _, body = client.follow(refused, "/register/master/account")
    assert status == 200 and "一致しません" in body
    assert 'value="gamen001"' in body and PASSWORD not in body
    fields["password_confirm"] = PASSWORD
    status, headers, _ = client.post("/register/master/account", csrf=token, **fields)
    assert status == 303 and headers["location"].startswith("/enroll/auth")
    status, _, body = client(headers["location"])
    assert "マスターユーザー gamen001 を登録しました" in body

    # ④ ユーザー認証 → ⑤ 認証コード入力 (a wrong code first) → ⑥ 発行 → ⑧ 発行結果.
    status, headers, _ = client.authenticate(smtp, "gamen001", PASSWORD, "gamen001@example.jp")
    assert status == 303 and headers["location"] == "/enroll/code"
    status, _, body = client("/enroll/code")
    assert "g***@example.jp" in body
    code = code_from(smtp.code_mails("gamen001@example.jp")[-1])
    wrong = "000000" if code != "000000" else "111111"
    token = csrf_token(body)
    status, _, body = client.follow(client.post("/enroll/code", csrf=token, code=wrong))
    assert status == 200 and "あと4回" in body
    assert "あと4回" not in client("/enroll/code")[2]  # said once
    status, headers, _ = client.post("/enroll/code", csrf=token, code=code)
    assert status == 303 and headers["location"] == "/enroll/issue"
    status, _, body = client("/enroll/issue")
    assert "発行中" in body and 'id="btn-issue"' in body
    status, headers, _ = client.post("/enroll/issue", csrf=csrf_token(body))
    assert status == 303 and headers["location"] == "/enroll/result"
    status, _, body = client("/enroll/result")
    file_name = re.search(r"gamen001\d{14}\.p12", body)
    assert status == 200 and file_name, body
    p12 = tmp_path / "download.p12"
    status, headers, _ = client("/enroll/download", "-o", str(p12))
    assert status == 200 and headers["content-type"] == "application/x-pkcs12"
    assert headers["content-disposition"] == f'attachment; filename="{file_name.group(0)}"'
    opened = open_pkcs12(p12, PASSWORD).stdout
    assert "CN=gamen001" in opened or "CN = gamen001" in opened
    assert "PRIVATE KEY" in opened
    # The password no longer waits in the session: 発行 again says where the user is.
    status, headers, body = client("/enroll/issue")
    assert status == 200 and "電子証明書発行済み" in body and 'id="btn-issue"' not in body

    # A valid certificate exists: user authentication answers ALREADY_ISSUED with the date
    # and the way out (revocation, then a new issuance).
    answer = client.authenticate(smtp, "gamen001", PASSWORD, "gamen001@example.jp")
    status, _, body = client.follow(answer, "/enroll/auth")
    assert "既に電子証明書が発行されている" in body and "失効を依頼" in body
    assert re.search(r"更新は\d{4}年\d{1,2}月\d{1,2}日から可能です", body)


def test_six_wrong_passwords_lock_with_the_time_it_lifts_and_the_master_unlocks(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    _, master_client = logged_in_master(gateway_stack, "gamen002", tmp_path)
    # The master user's page registers a general user and shows its password once.
    assert 'data-user-id="gamen002"' in master_client("/master/users")[2]
    general_password = master_client.create_general_user("ippan002")

    client = Client(gateway_stack, tmp_path)
    for _ in range(6):
        status, _, body = client.follow(
            client.authenticate(smtp, "ippan002", "Wrong-pass1!", "x"), "/enroll/auth"
        )
    assert "ロックされています" in body and re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d", body)
    # Even the right password is refused while locked.
    status, _, body = client.follow(client.authenticate(smtp, "ippan002", general_password, "x"))
    assert "ロックされています" in body

    status, _, body = master_client("/master/users")
    row = re.search(r'data-user-id="ippan002".*?</tr>', body, re.S)
    assert row and "ロック中" in row.group(0) and "unlock" in row.group(0)
    unlocked = master_client.post("/master/users/unlock", csrf=csrf_token(body), user_id="ippan002")
    status, _, body = master_client.follow(unlocked, "/master/users")
    assert status == 200 and "解除しました" in body
    # The given password alone opens no issuance (SPEC A5) ...
    refused = client.authenticate(smtp, "ippan002", general_password, "x")
    status, _, body = client.follow(refused, "/enroll/auth")
    assert status == 200 and "初期パスワード" in body
    # ... 一般ユーザーの初期登録 replaces it with the user's own, then authenticates.
    status, headers, body = client.post(
        "/enroll/auth",
        csrf=csrf_token(client("/enroll/auth?kind=general")[2]),
        kind="general",
        user_id="ippan002",
        password=general_password,
        new_password="Ippan-0002!",
        new_password_confirm="Ippan-0002!",
    )
    assert status == 303 and headers["location"] == "/enroll/code", body


def test_the_master_page_is_for_logged_in_master_users_only(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    anonymous = Client(gateway_stack, tmp_path)
    status, _, body = anonymous("/master/users")
    assert status == 403 and "電子証明書が必要です" in body
