"""When the gateway cannot prove its revocation view current (the CA is gone: no stream, no
CRL), protected requests are refused and the health endpoint says why (SPEC E2, fail
closed); the enrollment screens still render."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.gateway.curl import Client
from tests.gateway.gateway_stack import GatewayStack, start_gateway_stack
from tests.smtp_sink import SmtpSink

pytestmark = [pytest.mark.slow, pytest.mark.serial]


def test_protected_requests_are_refused_once_freshness_cannot_be_proved(
    tmp_path: Path, redis_server: str, smtp: SmtpSink
) -> None:
    stack: GatewayStack = start_gateway_stack(tmp_path / "stack", redis_server, smtp)
    try:
        gateway = stack.start_gateway(
            "strict", GATEWAY_MAX_STALENESS="1.5", GATEWAY_REQUIRE_LOGIN="0"
        )
        cert = stack.certified_user("fail0001", tmp_path / "cert").cert
        client = Client(stack, tmp_path, cert)
        url = f"https://localhost:{gateway.port}"
        assert client("/echo", url=url)[0] == 200
        # The stream proves the view current. (The CA's heartbeat comes every second and a
        # bit; the CRL poll may have answered in between, for a moment.)
        deadline = time.monotonic() + 5
        while True:
            status, _, body = client("/-/health", url=url)
            assert status == 200
            if json.loads(body)["revocations"]["source"] == "stream":
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.1)

        stack.ca.servers[0].kill()  # stream and CRL are both gone
        deadline = time.monotonic() + 10
        # (A user lookup that cannot reach the CA is refused the same way, even earlier; and
        # /-/health says 503 "unavailable" as soon as the CA's health stream breaks.)
        while json.loads(client("/-/health", url=url)[2])["status"] != "stale":
            assert time.monotonic() < deadline, "still serving without a fresh view"
            time.sleep(0.2)
        status, _, body = client("/echo", url=url)
        assert status == 503 and "失効状況を確認できない" in body
        status, _, body = client("/-/health", url=url)
        health = json.loads(body)
        assert status == 503 and health["status"] == "stale"
        assert health["revocations"]["fresh"] is False and "refused" in health["detail"]
        assert health["ca"]["serving"] is False
        # The screens that need no certificate still render.
        assert client("/login", url=url)[0] == 200
    finally:
        stack.stop()
