"""The screens of seed 000 driven with curl through a real gateway, CA, Redis and aiosmtpd:
master user initial registration, certificate issuance to the .p12 download, the messages
for wrong codes, locks and ALREADY_ISSUED, and a master user's page (register, unlock)."""

from __future__ import annotations

import html
import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from ca_service.api import pb
from tests.gateway.gateway_stack import GatewayStack
from tests.gateway.test_gateway_curl import Client
from tests.smtp_sink import SmtpSink, code_from
from tests.support import run

pytestmark = pytest.mark.slow

PASSWORD = "Kirin-2026!"


def _token(body: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', body)
    assert match, body
    return match.group(1)


def _post(client: Client, path: str, token: str, **fields: str) -> tuple[int, dict[str, str], str]:
    args = ["--data-urlencode", f"csrf={token}"]
    for name, value in fields.items():
        args += ["--data-urlencode", f"{name}={value}"]
    return client(path, *args)


def _code_mails(smtp: SmtpSink, email: str) -> list[EmailMessage]:
    with smtp.lock:
        return [
            m for m in smtp.messages if email in str(m["To"]) and "認証コード" in str(m["Subject"])
        ]


def _authenticate(
    client: Client, smtp: SmtpSink, user_id: str, password: str, email: str
) -> tuple[int, dict[str, str], str]:
    before = len(_code_mails(smtp, email))
    token = _token(client("/enroll/auth")[2])
    status, headers, body = _post(client, "/enroll/auth", token, user_id=user_id, password=password)
    if status == 303:
        smtp.wait_for(
            lambda m: email in str(m["To"]) and "認証コード" in str(m["Subject"]), count=before + 1
        )
    return status, headers, body


def test_master_registration_then_issuance_to_the_p12_download(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    created = gateway_stack.operator_api().CreateOrganization(  # type: ignore[attr-defined]
        pb.CreateOrganizationRequest(name="画面テスト株式会社")
    )
    organization_id = created.organization.organization_id
    client = Client(gateway_stack, tmp_path)
    # マスターユーザー初期登録: a wrong initial password is refused on the first screen.
    token = _token(client("/register/master")[2])
    status, _, body = _post(
        client,
        "/register/master",
        token,
        organization_id=organization_id,
        initial_password="wrong-initial",
    )
    assert status == 400 and "初期パスワードが正しくない" in body
    status, headers, _ = _post(
        client,
        "/register/master",
        token,
        organization_id=organization_id,
        initial_password=created.initial_password,
    )
    assert status == 303 and headers["location"] == "/register/master/account"
    token = _token(client("/register/master/account")[2])
    fields = {
        "user_id": "gamen001",
        "password": PASSWORD,
        "password_confirm": PASSWORD + "x",
        "email": "gamen001@example.jp",
        "email_confirm": "gamen001@example.jp",
    }
    status, _, body = _post(client, "/register/master/account", token, **fields)
    assert status == 400 and "一致しません" in body
    fields["password_confirm"] = PASSWORD
    status, headers, _ = _post(client, "/register/master/account", token, **fields)
    assert status == 303 and headers["location"].startswith("/enroll/auth")
    status, _, body = client(headers["location"])
    assert "マスターユーザー gamen001 を登録しました" in body

    # ④ ユーザー認証 → ⑤ 認証コード入力 (a wrong code first) → ⑥ 発行 → ⑧ 発行結果.
    status, headers, _ = _authenticate(client, smtp, "gamen001", PASSWORD, "gamen001@example.jp")
    assert status == 303 and headers["location"] == "/enroll/code"
    status, _, body = client("/enroll/code")
    assert "g***@example.jp" in body
    code = code_from(_code_mails(smtp, "gamen001@example.jp")[-1])
    wrong = "000000" if code != "000000" else "111111"
    token = _token(body)
    status, _, body = _post(client, "/enroll/code", token, code=wrong)
    assert status == 400 and "あと4回" in body
    status, headers, _ = _post(client, "/enroll/code", token, code=code)
    assert status == 303 and headers["location"] == "/enroll/issue"
    status, _, body = client("/enroll/issue")
    assert "発行中" in body and 'id="btn-issue"' in body
    status, headers, _ = _post(client, "/enroll/issue", _token(body))
    assert status == 303 and headers["location"] == "/enroll/result"
    status, _, body = client("/enroll/result")
    file_name = re.search(r"gamen001\d{14}\.p12", body)
    assert status == 200 and file_name, body
    p12 = tmp_path / "download.p12"
    status, headers, _ = client("/enroll/download", "-o", str(p12))
    assert status == 200 and headers["content-type"] == "application/x-pkcs12"
    assert headers["content-disposition"] == f'attachment; filename="{file_name.group(0)}"'
    opened = run(
        ["openssl", "pkcs12", "-in", str(p12), "-passin", f"pass:{PASSWORD}", "-noenc"]
    ).stdout
    assert "CN=gamen001" in opened or "CN = gamen001" in opened
    assert "PRIVATE KEY" in opened
    # The password no longer waits in the session: issuing again needs a new authentication.
    status, headers, _ = client("/enroll/issue")
    assert status == 303 and headers["location"] == "/enroll/auth"

    # A valid certificate exists: user authentication answers ALREADY_ISSUED with the date.
    status, _, body = _authenticate(client, smtp, "gamen001", PASSWORD, "gamen001@example.jp")
    assert status == 400 and "既に電子証明書が発行されている" in body
    assert re.search(r"更新は\d{4}年\d{1,2}月\d{1,2}日から可能です", body)


def test_six_wrong_passwords_lock_with_the_time_it_lifts_and_the_master_unlocks(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    master, master_password, master_email = gateway_stack.new_user("gamen002")
    cert = gateway_stack.issue(master, master_password, master_email, tmp_path / "master")
    master_client = Client(gateway_stack, tmp_path, cert)
    master_client.login(master, master_password)
    # The master user's page registers a general user and shows its password once.
    status, _, body = master_client("/master/users")
    assert status == 200 and 'data-user-id="gamen002"' in body
    status, _, body = _post(
        master_client,
        "/master/users/new",
        _token(body),
        user_id="ippan002",
        email="ippan002@example.jp",
    )
    assert status == 200 and 'data-user-id="ippan002"' in body
    initial = re.search(r'id="created-password"[^>]*>([^<]+)<', body)
    assert initial, body
    general_password = html.unescape(initial.group(1).strip())  # symbols arrive escaped

    client = Client(gateway_stack, tmp_path)
    for _ in range(6):
        status, _, body = _authenticate(client, smtp, "ippan002", "Wrong-pass1!", "x")
        assert status == 400
    assert "ロックされています" in body and re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d", body)
    # Even the right password is refused while locked.
    status, _, body = _authenticate(client, smtp, "ippan002", general_password, "x")
    assert status == 400 and "ロックされています" in body

    status, _, body = master_client("/master/users")
    row = re.search(r'data-user-id="ippan002".*?</tr>', body, re.S)
    assert row and "ロック中" in row.group(0) and "unlock" in row.group(0)
    status, _, body = _post(master_client, "/master/users/unlock", _token(body), user_id="ippan002")
    assert status == 200 and "解除しました" in body
    # 一般ユーザーの初期登録: the initial password now authenticates.
    status, headers, body = _authenticate(
        client, smtp, "ippan002", general_password, "ippan002@example.jp"
    )
    assert status == 303 and headers["location"] == "/enroll/code", body


def test_the_master_page_is_for_logged_in_master_users_only(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    anonymous = Client(gateway_stack, tmp_path)
    status, _, body = anonymous("/master/users")
    assert status == 403 and "電子証明書が必要です" in body
