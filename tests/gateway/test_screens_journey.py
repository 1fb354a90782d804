"""The screens as a user goes through them (issue 11), with curl through a real gateway, CA,
Redis and aiosmtpd: an answer to [発行] that never arrived loses nothing, every form answers
with a redirect so that a reload neither loses nor repeats a change (POST/redirect/GET), a
new user's initial password is shown to the master's session only, the portal learns how to
offer ログアウト, and a deep link survives the login."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import redis

from tests.gateway.curl import Client, csrf_token, echoed_headers, logged_in_master
from tests.gateway.gateway_stack import GatewayStack
from tests.smtp_sink import SmtpSink, code_from
from tests.support import open_pkcs12

pytestmark = pytest.mark.slow


def _to_issue_form(client: Client, smtp: SmtpSink, user_id: str, password: str, email: str) -> str:
    """ユーザー認証 and 認証コード入力; the CSRF token of 電子証明書発行."""
    client.follow(client.authenticate(smtp, user_id, password, email), "/enroll/code")
    code = code_from(smtp.code_mails(email)[-1])
    token = client.csrf("/enroll/code")
    client.follow(client.post("/enroll/code", csrf=token, code=code), "/enroll/issue")
    return token  # one token per session: the issue form's is the same


def test_a_lost_answer_to_issue_loses_nothing(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    user_id, password, email = gateway_stack.new_user("tabi0001")
    client = Client(gateway_stack, tmp_path)
    token = _to_issue_form(client, smtp, user_id, password, email)
    status, _, body = client("/enroll/issue")
    assert status == 200 and 'id="btn-issue"' in body
    # [発行]; its answer is never read (a closed tab, a dropped network).
    client.post("/enroll/issue", csrf=token)

    # A reload sends the form again: the answer it should have had, not "expired".
    status, _, body = client.follow(client.post("/enroll/issue", csrf=token), "/enroll/result")
    assert status == 200 and "電子証明書の発行が完了しました" in body, body
    file_name = re.search(re.escape(user_id) + r"\d{14}\.p12", body)
    assert file_name, body
    assert "認証の有効期限が切れました" not in body

    # Back from 発行結果 (or a new tab on 電子証明書発行): where the user is, and the file.
    status, _, body = client("/enroll/issue")
    assert status == 200 and "<title>電子証明書発行済み" in body
    assert f'ユーザーID <strong id="issued-user-id">{user_id}</strong>' in body
    assert 'id="btn-issue"' not in body and 'href="/enroll/download"' in body
    # (chromium's Back skips 発行, whose entry the form's own URL replaced: 認証コード入力)
    assert client("/enroll/code")[1]["location"] == "/enroll/issue"
    status, _, body = client("/enroll/auth")
    assert status == 200 and 'id="issued-waits"' in body and file_name.group(0) in body
    assert re.search(r'id="download-until">\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d<', body)
    p12 = tmp_path / "lost.p12"
    status, headers, _ = client("/enroll/download", "-o", str(p12))
    assert status == 200 and headers["content-type"] == "application/x-pkcs12"
    opened = open_pkcs12(p12, password)
    assert f"CN={user_id}" in opened.stdout or f"CN = {user_id}" in opened.stdout

    # Not another browser's: its session has no issuance.
    stranger = Client(gateway_stack, tmp_path)
    assert stranger("/enroll/result")[1]["location"] == "/login"
    assert stranger("/enroll/download")[0] == 404
    assert 'id="issued-waits"' not in stranger("/enroll/auth")[2]

    # ユーザー認証 again: "already issued" says what to do about it.
    answer = client.authenticate(smtp, user_id, password, email)
    status, _, body = client.follow(answer, "/enroll/auth")
    assert "既に電子証明書が発行されているため認証できません" in body
    assert "マスターユーザーの方はサービス運営者に電子証明書の失効を依頼したうえで、再発行" in body


def test_every_form_answers_with_a_redirect(
    gateway_stack: GatewayStack, smtp: SmtpSink, tmp_path: Path
) -> None:
    """Refused or accepted, a form's answer is 303 to a page; that page says the refusal once
    and fills the fields in again, never a password."""
    client = Client(gateway_stack, tmp_path)
    token = client.csrf("/enroll/auth")
    forms: list[tuple[str, dict[str, str], str, str]] = [
        # (form, fields, where it leads, what that page says)
        (
            "/enroll/auth",
            {"user_id": "nobody42", "password": "Wr0ng-Pass!"},
            "/enroll/auth",
            "ユーザーIDまたはパスワードが正しくありません",
        ),
        (
            "/enroll/auth",
            {"user_id": "nobody42", "password": "Wr0ng-Pass!", "kind": "general"},
            "/enroll/auth?kind=general",
            "一般ユーザー初期登録",
        ),
        ("/enroll/code", {"code": "123456"}, "/enroll/auth", "認証コードの有効期限"),
        ("/enroll/issue", {}, "/enroll/auth", "認証の有効期限が切れました"),
        (
            "/register/master",
            {"organization_id": "ORG-NONE", "initial_password": "Wr0ng-Pass!"},
            "/register/master",
            "初期パスワードが正しくない",
        ),
        ("/register/master/account", {"user_id": "x"}, "/register/master", "団体ID"),
        ("/logout", {}, "/login", "ログアウトしました。"),  # last: a new session follows
    ]
    for path, fields, location, says in forms:
        status, _, body = client.follow(client.post(path, csrf=token, **fields), location)
        assert status == 200 and says in body, (path, body)
        assert "Wr0ng-Pass!" not in body
        if "user_id" in fields and path == "/enroll/auth":
            assert 'value="nobody42"' in body
        # Said once: a reload of the page is the page without it.
        if 'id="error"' in body:
            assert 'id="error"' not in client(location)[2], path


def test_a_new_users_initial_password_is_shown_to_the_masters_session_only(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    master, client = logged_in_master(gateway_stack, "tabi0002", tmp_path)
    answer = client.post(
        "/master/users/new",
        csrf=client.csrf("/master/users"),
        user_id="ippan0021",
        email="ippan0021@example.jp",
    )
    status, _, body = client.follow(answer, "/master/users/created")
    shown = re.search(r'id="created-password"[^>]*>([^<]+)<', body)
    assert status == 200 and shown and 'id="created-user-id">ippan0021<' in body
    initial = html.unescape(shown.group(1))
    # A reload shows it again: nothing registered twice, nothing lost.
    status, _, again = client("/master/users/created")
    assert status == 200 and html.unescape(again).count(initial) == 1
    # The form sent again (its answer lost): the same page, not "this user ID is taken".
    answer = client.post(
        "/master/users/new",
        csrf=csrf_token(again),
        user_id="ippan0021",
        email="ippan0021@example.jp",
    )
    status, _, again = client.follow(answer, "/master/users/created")
    assert html.unescape(again).count(initial) == 1 and 'id="error"' not in again
    users = client("/master/users")[2]
    assert users.count('data-user-id="ippan0021"') == 1 and initial not in html.unescape(users)
    # Redis holds it only sealed under the cookie's key.
    with redis.Redis.from_url(gateway_stack.ca.redis_url) as stored:
        for key in stored.scan_iter("gw:session:*"):
            value = stored.get(key) or b""
            assert initial.encode() not in value and b"ippan0021" not in value

    # Another session of the same master user does not see it.
    other = Client(gateway_stack, tmp_path, master.cert)
    other.login(master.user_id, master.password)
    status, headers, _ = other("/master/users/created")
    assert status == 303 and headers["location"] == "/master/users"

    # [確認しました] ends it; afterwards the page says so.
    answer = client.post("/master/users/created", csrf=csrf_token(again))
    status, _, body = client.follow(answer, "/master/users")
    assert status == 200 and initial not in html.unescape(body)
    status, _, body = client.follow(client("/master/users/created"), "/master/users")
    assert "初期パスワードの表示は終了しました" in body

    # The same user ID again: refused, said on the page the redirect leads to.
    answer = client.post(
        "/master/users/new",
        csrf=csrf_token(body),
        user_id="ippan0021",
        email="ippan0021@example.jp",
    )
    status, _, body = client.follow(answer, "/master/users")
    assert "このユーザーIDは既に使われています" in body


def test_the_portal_is_told_how_to_offer_logout(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    _, client = logged_in_master(gateway_stack, "tabi0003", tmp_path)
    token = client.csrf("/login")  # the session's token, as the gateway's pages carry it
    status, _, body = client(
        "/echo",
        "-H",
        "X-Gateway-Logout-Url: https://evil.example/",
        "-H",
        "X-Gateway-Csrf-Token: forged",
    )
    received = echoed_headers(body)
    assert status == 200
    assert received["x-gateway-logout-url"] == ["/logout"]
    assert received["x-gateway-csrf-token"] == [token]
    # The sample portal shows the button; it logs out.
    status, _, body = client("/")
    assert 'id="logout"' in body and 'action="/logout"' in body
    assert csrf_token(body) == token
    status, _, body = client.follow(client.post("/logout", csrf=token), "/login")
    assert "ログアウトしました。" in body
    status, headers, _ = client("/echo")
    assert status == 303 and headers["location"] == "/login/password?next=/echo"
    # Without a login the upstream gets no logout headers (nor anything a client claims).
    anonymous = gateway_stack.start_gateway("no-login", GATEWAY_REQUIRE_LOGIN="0")
    status, _, body = client(
        "/echo",
        "-H",
        "X-Gateway-Csrf-Token: forged",
        url=f"https://localhost:{anonymous.port}",
    )
    assert status == 200 and not {"x-gateway-logout-url", "x-gateway-csrf-token"} & set(
        echoed_headers(body)
    )


def test_a_deep_link_survives_the_login(gateway_stack: GatewayStack, tmp_path: Path) -> None:
    user = gateway_stack.certified_user("tabi0004", tmp_path / "user")
    # Without a certificate: the menu's ログイン keeps the page.
    anonymous = Client(gateway_stack, tmp_path)
    status, headers, _ = anonymous("/echo?x=1")
    assert status == 303 and headers["location"] == "/login?next=/echo%3Fx%3D1"
    status, _, body = anonymous(headers["location"])
    assert 'id="btn-login" href="/login/password?next=/echo%3Fx%3D1"' in body
    for off_site in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        body = anonymous("/login?next=" + off_site.replace("\\", "%5C"))[2]
        assert 'id="btn-login" href="/login/password"' in body, off_site

    # With it: a wrong password first, then the right one, then the page asked for.
    client = Client(gateway_stack, tmp_path, user.cert)
    status, headers, _ = client("/echo?x=1")
    form = headers["location"]
    assert form == "/login/password?next=/echo%3Fx%3D1"
    status, _, body = client(form)
    assert 'action="/login/password?next=/echo%3Fx%3D1"' in body
    wrong = client.login(user.user_id, "Wr0ng-Pass!", next_path="/echo?x=1")
    status, _, body = client.follow(wrong, form)
    assert 'name="next" value="/echo?x=1"' in body and "正しくありません" in body
    # A stale form (its CSRF token gone) leads back to the same login, deep link and all.
    status, _, body = client(form, "--data-urlencode", "csrf=stale")
    assert status == 403 and f'href="{form}"' in body
    status, headers, _ = client.login(user.user_id, user.password, next_path="/echo?x=1")
    assert status == 303 and headers["location"] == "/echo?x=1"
    status, _, body = client(headers["location"])
    assert status == 200 and echoed_headers(body)["x-user-id"] == [user.user_id]
