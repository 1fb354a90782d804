"""When the gateway cannot prove its revocation view current (the CA is gone: no stream, no
CRL), protected requests are refused and the health endpoint says why (SPEC E2, fail
closed); the enrollment screens still render."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.gateway.gateway_stack import GatewayStack, start_gateway_stack
from tests.gateway.test_gateway_curl import Client
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow


def test_protected_requests_are_refused_once_freshness_cannot_be_proved(
    tmp_path: Path, redis_server: str, smtp: SmtpSink
) -> None:
    stack: GatewayStack = start_gateway_stack(tmp_path / "stack", redis_server, smtp)
    try:
        gateway = stack.start_gateway(
            "strict", GATEWAY_MAX_STALENESS="1.5", GATEWAY_REQUIRE_LOGIN="0"
        )
        user_id, password, email = stack.new_user("fail0001")
        cert = stack.issue(user_id, password, email, tmp_path / "cert")
        client = Client(stack, tmp_path, cert)
        url = f"https://localhost:{gateway.port}"
        assert client("/echo", url=url)[0] == 200
        status, _, body = client("/-/health", url=url)
        assert status == 200 and json.loads(body)["revocations"]["source"] == "stream"

        stack.ca.servers[0].kill()  # stream and CRL are both gone
        deadline = time.monotonic() + 10
        # (A user lookup that cannot reach the CA is refused the same way, even earlier.)
        while client("/-/health", url=url)[0] != 503:
            assert time.monotonic() < deadline, "still serving without a fresh view"
            time.sleep(0.2)
        status, _, body = client("/echo", url=url)
        assert status == 503 and "失効状況を確認できない" in body
        status, _, body = client("/-/health", url=url)
        health = json.loads(body)
        assert status == 503 and health["status"] == "stale"
        assert health["revocations"]["fresh"] is False and "refused" in health["detail"]
        # The screens that need no certificate still render.
        assert client("/login", url=url)[0] == 200
    finally:
        stack.stop()
