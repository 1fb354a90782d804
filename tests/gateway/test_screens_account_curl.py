"""Issue 11's screens driven with curl through a real gateway, CA, Redis and aiosmtpd:
一般ユーザーの初期登録 choosing the user's own password, パスワード変更 under the lockout,
認証コードの再送 with its limit, and a master user's page (certificates, password reset
shown once, revocation with a reason) that cannot reach another organisation."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ca_service.api import pb
from ca_service.client import api_error
from tests.gateway.curl import Client, csrf_token, logged_in_master, shown_password
from tests.gateway.gateway_stack import GatewayStack, start_gateway_stack
from tests.smtp_sink import SmtpSink
from tests.stack_support import choose_password
from tests.support import open_pkcs12

pytestmark = pytest.mark.slow

# A short resend interval, so that a resend can be accepted without waiting a minute; the
# window and the count stay SPEC's.
RESEND_SECONDS = 5
WRONG = "Wr0ng-pass!"


@pytest.fixture(scope="module")
def gateway_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, smtp: SmtpSink
) -> Iterator[GatewayStack]:
    stack = start_gateway_stack(
        tmp_path_factory.mktemp("gw-account"),
        redis_server,
        smtp,
        CA_RESEND_INTERVAL_SECONDS=str(RESEND_SECONDS),
    )
    yield stack
    stack.stop()


def _row(body: str, user_id: str) -> str:
    row = re.search(rf'<tr data-user-id="{user_id}">.*?</tr>', body, re.S)
    assert row, body
    return row.group(0)


def _openssl_opens(p12: Path, password: str) -> bool:
    answer = open_pkcs12(p12, password, check=False)
    return answer.returncode == 0 and "PRIVATE KEY" in answer.stdout


def test_a_general_user_chooses_its_own_password_on_the_way_to_issuance(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    _, master_client = logged_in_master(gateway_stack, "acgam101", tmp_path)
    given = master_client.create_general_user("acipn101")
    email = "acipn101@example.jp"
    client = Client(gateway_stack, tmp_path)

    # 電子証明書発行 with the given password: refused, pointing to the initial registration.
    status, _, body = client.follow(client.authenticate(smtp, "acipn101", given, email))
    assert status == 200 and "一般ユーザーの初期登録" in body
    assert smtp.code_mails(email) == []

    status, _, body = client("/enroll/auth?kind=general")
    assert status == 200 and 'id="new_password"' in body and 'id="new_password_confirm"' in body
    token = csrf_token(body)
    fields = {"kind": "general", "user_id": "acipn101", "password": given}
    status, _, body = client.follow(
        client.post(
            "/enroll/auth",
            csrf=token,
            **fields,
            new_password="Own-Pass101!",
            new_password_confirm="Own-Pass101?",
        )
    )
    assert status == 200 and "確認用パスワードが一致しません" in body
    status, _, body = client.follow(
        client.post(
            "/enroll/auth", csrf=token, **fields, new_password=given, new_password_confirm=given
        )
    )
    assert status == 200 and "現在のパスワードと異なる" in body
    status, _, body = client.follow(
        client.post(
            "/enroll/auth", csrf=token, **fields, new_password="short", new_password_confirm="short"
        )
    )
    assert status == 200 and "8～12桁" in body

    chosen = "Own-Pass101!"
    status, headers, _ = client.post(
        "/enroll/auth", csrf=token, **fields, new_password=chosen, new_password_confirm=chosen
    )
    assert status == 303 and headers["location"] == "/enroll/code"
    code = smtp.wait_for_code(email, 0)
    token = csrf_token(client("/enroll/code")[2])
    status, headers, _ = client.post("/enroll/code", csrf=token, code=code)
    assert status == 303 and headers["location"] == "/enroll/issue"
    status, headers, _ = client.post("/enroll/issue", csrf=csrf_token(client("/enroll/issue")[2]))
    assert status == 303 and headers["location"] == "/enroll/result"
    p12 = tmp_path / "general.p12"
    status, _, _ = client("/enroll/download", "-o", str(p12))
    assert status == 200
    # The .p12 is protected by the user's own password, which the master never saw.
    assert _openssl_opens(p12, chosen)
    assert not _openssl_opens(p12, given)


def test_password_change_needs_the_current_password_and_counts_wrong_ones(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    user = gateway_stack.certified_user("acgam102", tmp_path / "user")
    client = Client(gateway_stack, tmp_path)
    status, _, body = client("/login")
    assert 'href="/account/password"' in body
    status, _, body = client("/account/password")
    assert status == 200 and "パスワード変更" in body
    for field in ("user_id", "current_password", "new_password", "new_password_confirm"):
        assert f'id="{field}"' in body
    assert 'id="kbd-toggle-current_password"' in body  # the software keyboard (B8)
    token = csrf_token(body)
    new = "Chang3d-102!"

    def change(current: str, new_password: str, confirm: str | None = None) -> tuple[int, str]:
        # Refused, it answers with a redirect back to the form (POST/redirect/GET).
        status, _, body = client.follow(
            client.post(
                "/account/password",
                csrf=token,
                user_id=user.user_id,
                current_password=current,
                new_password=new_password,
                new_password_confirm=new_password if confirm is None else confirm,
            ),
            "/account/password",
        )
        return status, body

    status, body = change(user.password, new, new + "x")
    assert status == 200 and "確認用パスワードが一致しません" in body
    status, body = change(user.password, user.password)
    assert status == 200 and "現在のパスワードと異なる" in body
    for _ in range(5):
        status, body = change(WRONG, new)
        assert status == 200 and "ユーザーIDまたはパスワードが正しくありません" in body
    # The 6th wrong password locks, through the same counter as ログイン and ユーザー認証.
    status, body = change(WRONG, new)
    assert status == 200 and "ロックされています" in body
    status, body = change(user.password, new)  # no way around the lock
    assert status == 200 and "ロックされています" in body
    gateway_stack.operator_api().UnlockUser(  # type: ignore[attr-defined]
        pb.UnlockUserRequest(user_id=user.user_id)
    )
    status, headers, _ = client.post(
        "/account/password",
        csrf=token,
        user_id=user.user_id,
        current_password=user.password,
        new_password=new,
        new_password_confirm=new,
    )
    assert status == 303 and headers["location"] == "/login"
    status, _, body = client("/login")
    assert "パスワードを変更しました" in body
    assert "パスワードを変更しました" not in client("/login")[2]  # said once
    # The old password no longer works; the new one does (ログイン with the certificate).
    certified = Client(gateway_stack, tmp_path, user.cert)
    status, _, body = certified.follow(certified.login(user.user_id, user.password))
    assert status == 200 and "正しくありません" in body
    status, headers, _ = certified.login(user.user_id, new)
    assert status == 303
    # Logged in: the screen is for the session's user, whatever the form says.
    status, _, body = certified("/account/password")
    assert re.search(rf'id="user_id"[^>]*value="{user.user_id}"[^>]*readonly', body), body
    status, headers, _ = certified.post(
        "/account/password",
        csrf=csrf_token(body),
        user_id="someone9",
        current_password=new,
        new_password="Again-102!x",
        new_password_confirm="Again-102!x",
    )
    assert status == 303
    api = gateway_stack.gateway_api()
    assert (
        api.Login(  # type: ignore[attr-defined]
            pb.LoginRequest(user_id=user.user_id, password="Again-102!x")
        ).user_id
        == user.user_id
    )


def test_the_code_is_resent_at_most_once_per_interval_and_replaces_the_old_one(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    user_id, password, email = gateway_stack.new_user("acgam103")
    client = Client(gateway_stack, tmp_path)
    token = csrf_token(client("/enroll/auth")[2])
    status, headers, _ = client.post("/enroll/auth", csrf=token, user_id=user_id, password=password)
    assert status == 303
    token = csrf_token(client("/enroll/code")[2])  # the session was renewed
    # At once (well within the interval): refused, saying how long to wait.
    status, headers, body = client.follow(
        client.post("/enroll/code/resend", csrf=token), "/enroll/code"
    )
    assert status == 200 and "秒ほど待ってから" in body
    assert 'id="code"' in body  # still on 認証コード入力
    assert 'id="btn-resend"' in body and f"前回の送信から{RESEND_SECONDS}秒以上あけて" in body
    old_code = smtp.wait_for_code(email, 0)
    assert len(smtp.code_mails(email)) == 1

    time.sleep(RESEND_SECONDS + 0.2)
    status, headers, _ = client.post("/enroll/code/resend", csrf=token)
    assert status == 303 and headers["location"] == "/enroll/code"
    new_code = smtp.wait_for_code(email, 1)
    status, _, body = client("/enroll/code")
    assert "認証コードを再送しました" in body
    if new_code != old_code:
        status, _, body = client.follow(client.post("/enroll/code", csrf=token, code=old_code))
        assert status == 200 and "認証コードが正しくありません" in body
    status, headers, _ = client.post("/enroll/code", csrf=token, code=new_code)
    assert status == 303 and headers["location"] == "/enroll/issue"
    # Nothing left to resend after the code was used: back to ユーザー認証.
    time.sleep(RESEND_SECONDS + 0.2)
    status, _, body = client.follow(client.post("/enroll/code/resend", csrf=token))
    assert status == 200 and "ユーザー認証からやり直してください" in body


def test_the_master_page_shows_certificates_resets_and_revokes_in_its_organisation_only(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    _, master_client = logged_in_master(gateway_stack, "acgam104", tmp_path)
    holder_given = master_client.create_general_user("acipn104")
    master_client.create_general_user("acipn105")
    holder = choose_password(gateway_stack.ca, "acipn104", holder_given)
    holder_cert = gateway_stack.issue("acipn104", holder, "acipn104@example.jp", tmp_path / "h")
    # Another organisation, with a general user holding a certificate.
    _, other_client = logged_in_master(gateway_stack, "acgam106", tmp_path)
    foreign = choose_password(
        gateway_stack.ca, "acipn106", other_client.create_general_user("acipn106")
    )
    gateway_stack.issue("acipn106", foreign, "acipn106@example.jp", tmp_path / "f")

    status, _, body = master_client("/master/users")
    assert status == 200
    held = _row(body, "acipn104")
    assert 'data-holding="valid">有効<' in held
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 23:59", held)
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日から更新できます", held)
    assert 'action="/master/users/revoke"' in held and "PC紛失" in held and "PC変更" in held
    none = _row(body, "acipn105")
    assert 'data-holding="none">なし<' in none and "発行できます" in none
    assert "初期パスワード未変更" in none and "初期パスワード未変更" not in held
    assert 'action="/master/users/revoke"' not in none
    assert 'action="/master/users/reset"' not in _row(body, "acgam104")  # masters: operator
    assert "acipn106" not in body
    token = csrf_token(body)

    # パスワード初期化: POST → redirect → GET shows the new initial password once.
    status, headers, _ = master_client.post("/master/users/reset", csrf=token, user_id="acipn105")
    assert status == 303 and headers["location"] == "/master/users"
    status, _, body = master_client("/master/users")
    reset = shown_password(body, "reset-password")
    assert 'id="reset-user-id">acipn105<' in body
    assert 'id="reset-password"' not in master_client("/master/users")[2]
    api = gateway_stack.gateway_api()
    with pytest.raises(grpc.RpcError) as caught:
        api.Login(pb.LoginRequest(user_id="acipn105", password=reset))  # type: ignore[attr-defined]
    assert api_error(caught.value).reason == "PASSWORD_CHANGE_REQUIRED"

    # Other organisations' users are out of reach: nothing reset, nothing revoked.
    for path, extra in (
        ("/master/users/reset", {}),
        ("/master/users/revoke", {"cause": "lost_pc"}),
    ):
        status, _, body = master_client.follow(
            master_client.post(path, csrf=token, user_id="acipn106", **extra)
        )
        assert status == 200 and "指定されたユーザーが見つかりません" in body, path
    assert (
        api.Login(  # type: ignore[attr-defined]
            pb.LoginRequest(user_id="acipn106", password=foreign)
        ).user_id
        == "acipn106"
    )

    # 電子証明書の失効 with a reason; without one, nothing happens.
    status, _, body = master_client.follow(
        master_client.post("/master/users/revoke", csrf=token, user_id="acipn104")
    )
    assert status == 200 and "失効の理由を選択してください" in body
    status, headers, _ = master_client.post(
        "/master/users/revoke", csrf=token, user_id="acipn104", cause="lost_pc"
    )
    assert status == 303 and headers["location"] == "/master/users"
    status, _, body = master_client("/master/users")
    assert "acipn104 の電子証明書（1件）を失効しました（理由: PC紛失）" in body
    revoked = _row(body, "acipn104")
    assert 'data-holding="revoked">失効<' in revoked and "発行できます" in revoked
    audit = gateway_stack.operator_api().ListAudit(  # type: ignore[attr-defined]
        pb.ListAuditRequest(user_id="acipn104", action="revoke")
    )
    assert [r.actor for r in audit.records] == ["acgam104"]
    assert '"reason": "key_compromise"' in audit.records[0].details
    foreign_certs = gateway_stack.operator_api().ListCertificates(  # type: ignore[attr-defined]
        pb.ListCertificatesRequest(user_id="acipn106")
    )
    assert [c.status for c in foreign_certs.certificates] == [pb.CERTIFICATE_STATUS_VALID]

    # The revoked certificate no longer opens the portal.
    revoked_client = Client(gateway_stack, tmp_path, holder_cert)
    deadline = time.monotonic() + 10
    while True:
        status, _, body = revoked_client("/")
        if status == 403 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 403 and "失効" in body
