"""The issued file's ten minutes on the gateway's injected clock (issue 11, item 1): the
screens in process against a real CA process, Redis and aiosmtpd (``test_screens_clock``'s
stack). While the file waits, 発行結果 offers it; once its time is over, every way back —
発行結果, a reload of [発行] — says the certificate was issued and what to do (revocation,
then a new issuance), and the file is gone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from gateway.web.base import ONE_TIME_SECONDS
from tests.clock import FakeClock
from tests.gateway.test_screens_clock import Browser, screens_on, stack  # noqa: F401 - the fixture
from tests.smtp_sink import SmtpSink
from tests.stack_support import MASTER_PASSWORD, Stack, new_org

pytestmark = pytest.mark.slow


def _text(body: object) -> str:
    assert isinstance(body, bytes)
    return body.decode()


async def test_the_issued_file_waits_its_time_then_the_way_out_is_said(
    stack: Stack,  # noqa: F811
    smtp: SmtpSink,
    redis_server: str,
) -> None:
    _, email = new_org(stack, smtp, "tokei011")
    clock = FakeClock(datetime.now(UTC))
    async with screens_on(stack, redis_server, clock, idle=3600) as (screens, _):
        browser = Browser(screens)
        token = await browser.csrf("/enroll/auth")
        before = len(smtp.code_mails(email))
        await browser.send(
            "POST", "/enroll/auth", csrf=token, user_id="tokei011", password=MASTER_PASSWORD
        )
        token = await browser.csrf("/enroll/code")  # a new session after the authentication
        code = smtp.wait_for_code(email, before)
        answer = await browser.send("POST", "/enroll/code", csrf=token, code=code)
        assert ("Location", "/enroll/issue") in answer.headers
        answer = await browser.send("POST", "/enroll/issue", csrf=token)
        assert answer.status == 303 and ("Location", "/enroll/result") in answer.headers

        # Within its time: 発行結果 and the file.
        clock.advance(timedelta(seconds=ONE_TIME_SECONDS - 5))
        page = _text((await browser.send("GET", "/enroll/result")).body)
        assert "電子証明書の発行が完了しました" in page
        assert (await browser.send("GET", "/enroll/download")).status == 200
        assert 'id="issued-waits"' in _text((await browser.send("GET", "/enroll/auth")).body)

        # Past it: the file is gone; 発行結果 and a reload of [発行] say what happened.
        clock.advance(timedelta(seconds=10))
        assert (await browser.send("GET", "/enroll/download")).status == 404
        answer = await browser.send("POST", "/enroll/issue", csrf=token)
        assert ("Location", "/enroll/result") in answer.headers
        page = _text((await browser.send("GET", "/enroll/result")).body)
        assert "<title>電子証明書発行済み" in page and 'id="issued-expired"' in page
        assert "ダウンロードの有効期限" in page and "失効を依頼したうえで、再発行" in page
        assert 'href="/enroll/download"' not in page
        assert re.search(r"tokei011\d{14}\.p12", page)
        assert 'id="issued-waits"' not in _text((await browser.send("GET", "/enroll/auth")).body)
