"""A password change ends the user's other gateway sessions, driven with curl through real
gateways, a real CA process, Redis and aiosmtpd: the user's own パスワード変更 (the session
that made it goes on, under a new ID), a master user's パスワード初期化 and the operator's
``ca-admin user reset-password`` (every session of the target ends). The session that
ended says why, once.

The CA stamps ``password_changed_at`` and announces the change on the revocation stream; a
gateway whose user cache would hold the old record for 60 s still ends the session within
the stream's second."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ca_service.api import pb
from tests.gateway.curl import Client, csrf_token, logged_in_master
from tests.gateway.gateway_stack import GatewayStack
from tests.stack_support import choose_password
from tests.support import run, tool

pytestmark = pytest.mark.slow

ENDED = "パスワードが変更されたため、ログアウトしました。もう一度ログインしてください。"
# The user cache of the tests' gateway (GATEWAY_USER_CACHE_SECONDS=0.5) plus the stream's
# second, with room for a loaded machine.
WITHIN = 5.0


@pytest.fixture(scope="module")
def long_cache_url(gateway_stack: GatewayStack) -> str:
    """A second gateway on the same Redis and CA whose user cache holds a record for 60 s:
    only the CA's announcement can make it see a change sooner."""
    process = gateway_stack.start_gateway("gateway-long-cache", GATEWAY_USER_CACHE_SECONDS="60")
    return f"https://localhost:{process.port}"


def _upstream_ok(client: Client, url: str | None = None) -> bool:
    status, _, _ = client("/", url=url)
    return status == 200


def _wait_until_ended(
    client: Client, url: str | None = None, since: float | None = None
) -> tuple[float, str]:
    """Polls a proxied page until the session is ended; (seconds since ``since``, else
    since the first poll, the location)."""
    started = time.monotonic() if since is None else since
    while True:
        status, headers, body = client("/", url=url)
        if status != 200:
            assert status == 303, (status, body)
            return time.monotonic() - started, headers["location"]
        assert time.monotonic() - started < WITHIN, "the session outlived the change"
        time.sleep(0.05)


def test_an_own_change_ends_the_other_sessions_and_keeps_the_one_that_made_it(
    gateway_stack: GatewayStack, long_cache_url: str, tmp_path: Path
) -> None:
    user = gateway_stack.certified_user("pwses101", tmp_path / "user")
    changer = Client(gateway_stack, tmp_path, user.cert)
    other = Client(gateway_stack, tmp_path, user.cert)  # another browser, same gateway
    far = Client(gateway_stack, tmp_path, user.cert)  # another browser, the other gateway
    screen = Client(gateway_stack, tmp_path, user.cert)  # on the gateway's own screens
    for client, url in ((changer, None), (other, None), (far, long_cache_url), (screen, None)):
        status, _, _ = client.login(user.user_id, user.password, url=url)
        assert status == 303
        assert _upstream_ok(client, url)  # the far gateway now caches the record for 60 s
    before = changer.session_cookie()

    body = changer("/account/password")[2]
    new = "Chang3d-101!"
    changed_at = time.monotonic()
    status, headers, _ = changer.post(
        "/account/password",
        csrf=csrf_token(body),
        user_id=user.user_id,
        current_password=user.password,
        new_password=new,
        new_password_confirm=new,
    )
    assert status == 303 and headers["location"] == "/login"
    assert changer.session_cookie() != before  # rotated
    status, _, body = changer("/login")
    assert "パスワードを変更しました" in body and ENDED not in body

    # The other session on the same gateway: ended at its next request, which goes to the
    # login form; that page says why, once.
    seconds, location = _wait_until_ended(other, since=changed_at)
    assert location == "/login/password"
    status, _, body = other(location)
    assert status == 200 and ENDED in body
    assert ENDED not in other("/login/password")[2]
    status, headers, _ = other("/")
    assert status == 303  # not logged in (the ended session is gone from Redis)

    # The other gateway caches the user's record for 60 s: the stream's announcement ends
    # the session anyway, within about a second.
    far_seconds, location = _wait_until_ended(far, long_cache_url, since=changed_at)
    assert far_seconds < 3.0, far_seconds
    assert ENDED in far(location, url=long_cache_url)[2]

    # A screen of the gateway (here the master user's page): to the login menu, with next.
    status, headers, _ = screen("/master/users")
    assert status == 303 and headers["location"] == "/login?next=/master/users"
    assert ENDED in screen(headers["location"])[2]

    # The session that made the change goes on, also past the user cache (0.5 s).
    time.sleep(1.0)
    assert _upstream_ok(changer)
    assert changer("/master/users")[0] == 200
    total = time.monotonic() - changed_at
    print(
        f"\nended after the change (POST sent): same gateway {seconds:.2f} s, "
        f"60 s-cache gateway {far_seconds:.2f} s; the changer still in after {total:.1f} s"
    )

    # A new login with the new password is a session like any other.
    status, _, _ = other.login(user.user_id, new)
    assert status == 303 and _upstream_ok(other)


def test_a_master_users_reset_ends_every_session_of_the_general_user(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    _, master_client = logged_in_master(gateway_stack, "pwsma102", tmp_path)
    given = master_client.create_general_user("pwsge102")
    chosen = choose_password(gateway_stack.ca, "pwsge102", given)
    cert = gateway_stack.issue("pwsge102", chosen, "pwsge102@example.jp", tmp_path / "g")
    sessions = [Client(gateway_stack, tmp_path, cert) for _ in range(2)]
    for client in sessions:
        assert client.login("pwsge102", chosen)[0] == 303
        assert _upstream_ok(client)

    token = csrf_token(master_client("/master/users")[2])
    status, headers, _ = master_client.post("/master/users/reset", csrf=token, user_id="pwsge102")
    assert status == 303 and headers["location"] == "/master/users"

    for client in sessions:
        _, location = _wait_until_ended(client)
        assert ENDED in client(location)[2]
    # The master user's own session is not touched.
    assert _upstream_ok(master_client)
    # The audit says the reset ended the user's sessions.
    entries = gateway_stack.operator_api().ListAudit(  # type: ignore[attr-defined]
        pb.ListAuditRequest(user_id="pwsge102", action="reset_password")
    )
    (entry,) = entries.records
    assert entry.actor == "pwsma102" and json.loads(entry.details)["sessions"] == "ended"


def test_the_operators_ca_admin_reset_of_a_master_user_ends_its_sessions(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    master, client = logged_in_master(gateway_stack, "pwsma103", tmp_path)
    poster = Client(gateway_stack, tmp_path, master.cert)
    assert poster.login(master.user_id, master.password)[0] == 303
    assert _upstream_ok(client)
    env = {**gateway_stack.ca.env, "CA_GRPC_ADDRESS": gateway_stack.ca.servers[0].address}
    shown = run([tool("ca-admin"), "user", "reset-password", master.user_id], env).stdout
    assert "new initial password for pwsma103" in shown
    _, location = _wait_until_ended(client)
    assert ENDED in client(location)[2]
    # A form posted to the portal by an ended session: 401, the page says why.
    started = time.monotonic()
    while True:
        status, _, body = poster("/", "--data", "field=value")
        if status != 200:
            break
        assert time.monotonic() - started < WITHIN, "the session outlived the reset"
        time.sleep(0.05)
    assert status == 401 and ENDED in body
    status, _, body = poster("/", "--data", "field=value")
    assert status == 401 and ENDED not in body  # now simply not logged in
