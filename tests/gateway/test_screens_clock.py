"""The screens in process, on the gateway's injected clock, against a real CA process, Redis
and aiosmtpd: the rule figures arrive over GetRules (the CA's configured lock and code
durations too) and reach the screens, and the enrollment journey decides by the clock it is
given — a code window that has passed on the test's clock sends the user back to
ユーザー認証, with no waiting."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from redis.asyncio import Redis

from ca_service.client import aio_secure_channel
from ca_service.shared.http.parser import Incoming
from ca_service.shared.redis_peer import RedisPeer
from gateway.accounts import Rules
from gateway.ca_client import CaClient
from gateway.errors import RedisUnavailable
from gateway.identity import Identity
from gateway.server import Connection, Request, Response
from gateway.sessions import COOKIE_NAME, SessionStore
from gateway.web.pages import Pages
from gateway.web.screens import Screens
from tests.clock import FakeClock
from tests.gateway.rules import RULES
from tests.smtp_sink import SmtpSink
from tests.stack_support import MASTER_PASSWORD, Stack, new_org, start_stack

pytestmark = pytest.mark.slow

LOCK_SECONDS, CODE_SECONDS = 90, 120


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, smtp: SmtpSink
) -> Iterator[Stack]:
    stack = start_stack(
        tmp_path_factory.mktemp("clock"),
        redis_server,
        smtp,
        count=1,
        CA_LOCK_SECONDS=str(LOCK_SECONDS),
        CA_CODE_TTL_SECONDS=str(CODE_SECONDS),
    )
    yield stack
    for server in stack.servers:
        server.stop()


@dataclass
class Browser:
    """One browser's cookie against the screens, in process."""

    screens: Screens
    cookie: str = ""

    async def send(self, method: str, target: str, **form: str) -> Response:
        body = urlencode(form).encode()
        headers = [("Host", "localhost")]
        if self.cookie:
            headers.append(("Cookie", f"{COOKIE_NAME}={self.cookie}"))
        if method == "POST":
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        head = Incoming((method, target, "HTTP/1.1"), headers)
        head.length = len(body) if method == "POST" else 0
        request = Request(
            head,
            Connection("127.0.0.1", None, "TLSv1.3", False),
            content=body if head.length else b"",
        )
        response = await self.screens.handle(request)
        for name, value in response.headers:
            if name == "Set-Cookie" and value.startswith(COOKIE_NAME + "="):
                self.cookie = value.split(";", 1)[0].split("=", 1)[1]
        return response

    async def csrf(self, target: str) -> str:
        response = await self.send("GET", target)
        assert isinstance(response.body, bytes)
        match = re.search(rb'name="csrf" value="([^"]+)"', response.body)
        assert response.status == 200 and match, response.body
        return match.group(1).decode()


async def _unused_identify(request: Request) -> Identity:
    raise AssertionError("these screens need no certificate")


@contextlib.asynccontextmanager
async def screens_on(
    stack: Stack,
    redis_server: str,
    clock: FakeClock,
    *,
    rules: Rules | None = None,
    idle: int = 1800,
) -> AsyncIterator[tuple[Screens, Rules]]:
    """The screens in process on ``clock``, against ``stack``'s first CA and a Redis of
    ``redis_server``, with ``rules`` (default: the CA's, over GetRules); no certificate."""
    channel = aio_secure_channel(stack.servers[0].address, stack.gateway)
    redis = RedisPeer(Redis.from_url(redis_server), error=RedisUnavailable)
    try:
        ca = CaClient(channel)
        figures = rules if rules is not None else await ca.rules()
        screens = Screens(
            ca=ca,
            sessions=SessionStore(redis, idle=idle, absolute=43200, clock=clock),
            pages=Pages("電子証明書サービス", figures),
            identify=_unused_identify,
            rules=figures,
            clock=clock,
        )
        yield screens, figures
    finally:
        await redis.aclose()
        await channel.close(None)


async def test_the_screens_decide_by_the_clock_they_are_given(
    stack: Stack, smtp: SmtpSink, redis_server: str
) -> None:
    _, email = new_org(stack, smtp, "tokei001")
    clock = FakeClock(datetime.now(UTC))
    async with screens_on(stack, redis_server, clock) as (screens, rules):
        # The CA's figures, with its configured durations (SPEC's are 60 and 30 minutes).
        assert rules == replace(
            RULES,
            lock_duration=timedelta(seconds=LOCK_SECONDS),
            code_validity=timedelta(seconds=CODE_SECONDS),
        )
        browser = Browser(screens)
        token = await browser.csrf("/enroll/auth")
        page = await browser.send("GET", "/enroll/auth")
        assert isinstance(page.body, bytes)
        assert "90秒間ログイン不可" in page.body.decode()

        mails = len(smtp.to(email))
        answer = await browser.send(
            "POST", "/enroll/auth", csrf=token, user_id="tokei001", password=MASTER_PASSWORD
        )
        assert answer.status == 303 and ("Location", "/enroll/code") in answer.headers
        smtp.wait_for(lambda m: email in str(m["To"]), count=mails + 1)
        assert (await browser.send("GET", "/enroll/code")).status == 200

        # Within the code's window by the test's clock: still there. Past it: start again.
        clock.advance(timedelta(seconds=CODE_SECONDS - 5))
        assert (await browser.send("GET", "/enroll/code")).status == 200
        clock.advance(timedelta(seconds=10))
        answer = await browser.send("GET", "/enroll/code")
        assert answer.status == 303 and ("Location", "/enroll/auth") in answer.headers


async def test_the_forms_that_check_a_password_or_code_are_the_limited_ones(
    stack: Stack, redis_server: str
) -> None:
    async with screens_on(stack, redis_server, FakeClock(), rules=RULES) as (screens, _):
        pass
    assert screens.limited() == {
        ("POST", "/login/password"),  # ログイン
        ("POST", "/register/master"),  # マスターユーザー初期登録: the initial password
        ("POST", "/register/master/account"),  # ... and again with the new account
        ("POST", "/enroll/auth"),  # ユーザー認証: the password, then a mailed code
        ("POST", "/enroll/code"),  # 認証コード入力
        ("POST", "/enroll/issue"),  # 発行: the password once more, for the PKCS#12
        ("POST", "/account/email"),  # メールアドレス変更: sends a mail
        ("POST", "/enroll/code/resend"),  # 認証コードの再送: sends a code
        ("POST", "/account/password"),  # パスワード変更: the current password
    }
    for path in ("/login", "/register/master/account", "/enroll/download", "/master/users/new"):
        assert screens.serves(path)
    assert not screens.serves("/enroll")
