"""Password spraying (issue 9, item 12) against real processes: two gateway instances sharing
one redis-server, the CA behind them, clients on their own loopback addresses.

One address with 32 connections posting random user IDs with one password gets no more
password checks than the configured rate, counted at the CA (its lockout keys); a second
address logs in meanwhile as usual; the CA's OCSP answers keep their latency. Every screen
that checks a password or code is limited with a Japanese 429 page and Retry-After; behind a
trusted proxy the client is taken from X-Forwarded-For, from anyone else it is not; without
Redis no password is checked (fail closed)."""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from ca_service.api import pb
from tests.gateway.curl import Client
from tests.gateway.gateway_stack import GatewayStack, Process
from tests.gateway.ocsp_probe import ocsp_request, p99, probe_ocsp
from tests.support import throwaway_redis

pytestmark = [pytest.mark.slow, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[2]
RATE_PER_MINUTE, BURST = 30, 5
SPRAY_SECONDS = 20.0  # the OCSP probes run from 2 s to 17 s into it


def _url(process: Process) -> str:
    return f"https://localhost:{process.port}"


@pytest.fixture(scope="module")
def spray_gateways(gateway_stack: GatewayStack) -> list[Process]:
    """Two gateway instances with the limits under test, on the stack's one Redis."""
    return [
        gateway_stack.start_gateway(
            f"spray{i}",
            GATEWAY_AUTH_RATE_PER_MINUTE=str(RATE_PER_MINUTE),
            GATEWAY_AUTH_BURST=str(BURST),
        )
        for i in range(2)
    ]


def test_spraying_gets_at_most_the_configured_rate_and_nobody_else_notices(
    gateway_stack: GatewayStack, spray_gateways: list[Process], tmp_path: Path
) -> None:
    user = gateway_stack.certified_user("spry0001", tmp_path / "cert")
    user_id, password, certificate = user.user_id, user.password, user.cert
    request = ocsp_request(gateway_stack, certificate)
    quiet = probe_ocsp(gateway_stack, request, 3, 100)

    config = {
        "ports": [g.port for g in spray_gateways],
        "trust": str(gateway_stack.trust),
        "source": "127.0.0.1",
        "connections": 32,
        "seconds": SPRAY_SECONDS,
        "password": "Spr4y-Pass!",
        "prefix": "zq",
    }
    spray = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.spray", json.dumps(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(2)  # the spraying is under way

        # Meanwhile a second client address: its ログイン and its ユーザー認証 go through.
        second: dict[str, object] = {}

        def second_client() -> None:
            client = Client(gateway_stack, tmp_path, certificate, source="127.0.0.2")
            url = _url(spray_gateways[0])
            started = time.monotonic()
            token = client.csrf("/login/password", url)
            second["login"] = client.post(
                "/login/password", url, csrf=token, user_id=user_id, password=password
            )[:2]
            second["login_seconds"] = time.monotonic() - started
            second["echo"] = client("/echo", url=url)[0]
            token = client.csrf("/enroll/auth", url)
            second["auth"] = client.post(
                "/enroll/auth", url, csrf=token, user_id=user_id, password="Wr0ng-Pass!"
            )
            second["auth_page"] = client("/enroll/auth", url=url)[2]

        helper = threading.Thread(target=second_client)
        helper.start()
        # Three 5-second windows of 500 probes: the p99 of each, so that one burst of the
        # shared machine's other load spoils one window, not the figure.
        windows = [probe_ocsp(gateway_stack, request, 5, 100) for _ in range(3)]
        helper.join(30)
        out, err = spray.communicate(timeout=60)
    finally:
        if spray.poll() is None:
            spray.kill()
            spray.wait()
    assert spray.returncode == 0, err.decode()
    result = json.loads(out)
    counts, seconds = result["counts"], result["seconds"]
    attempts = sum(counts.values())
    # A refusal of the CA (INVALID_CREDENTIALS: it checked the password) leads back to the
    # form (POST/redirect/GET); the limit's refusal is a 429 page.
    checks = counts.get("303", 0)
    assert set(counts) <= {"303", "429"}, counts
    # Counted at the CA: every password check of an unknown ID leaves its lockout key.
    assert gateway_stack.lockout_keys("zq*") == checks
    allowed = BURST + RATE_PER_MINUTE * seconds / 60
    assert BURST <= checks <= allowed + 1, (checks, allowed)
    assert checks >= 0.6 * allowed  # the rate is granted, not everything refused
    assert attempts > 10 * checks  # ... while the sprayer kept trying

    status, headers = second["login"]  # type: ignore[misc]
    assert status == 303 and headers["location"] == "/", second
    assert second["echo"] == 200
    status, headers, _ = second["auth"]  # type: ignore[misc]
    assert status == 303 and headers["location"] == "/enroll/auth", second
    assert "ユーザーIDまたはパスワードが正しくありません" in second["auth_page"]  # type: ignore[operator]
    shown = gateway_stack.operator_api().GetUser(  # type: ignore[attr-defined]
        pb.GetUserRequest(user_id=user_id)
    )
    assert shown.consecutive_failures == 1  # the second client's wrong password was checked

    during = [latency for window in windows for latency in window]
    window_p99s = [p99(window) for window in windows]
    typical = statistics.median(window_p99s)
    print(
        f"\nspraying: {attempts} attempts in {seconds:.1f} s ({attempts / seconds:.0f}/s), "
        f"{checks} password checks (limit {allowed:.1f}); second client's login "
        f"{second['login_seconds']:.2f} s; OCSP p50/p99 {statistics.median(quiet):.2f}/"
        f"{p99(quiet):.2f} ms quiet, {statistics.median(during):.2f}/{p99(during):.2f} ms "
        f"during ({len(during)} probes; p99 per window "
        f"{', '.join(f'{w:.2f}' for w in window_p99s)})"
    )
    assert typical < 5.0, f"OCSP p99 {typical:.2f} ms during the spraying"


@pytest.fixture(scope="module")
def strict_gateway(gateway_stack: GatewayStack) -> Process:
    """Two checks per client address, then one a minute; 127.0.0.5 is a trusted proxy."""
    return gateway_stack.start_gateway(
        "strict",
        GATEWAY_AUTH_RATE_PER_MINUTE="1",
        GATEWAY_AUTH_BURST="2",
        GATEWAY_TRUSTED_PROXIES="127.0.0.5",
    )


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("/login/password", "127.0.1.1"),
        ("/register/master", "127.0.1.2"),
        ("/register/master/account", "127.0.1.3"),
        ("/enroll/auth", "127.0.1.4"),
        ("/enroll/code", "127.0.1.5"),
        ("/enroll/issue", "127.0.1.6"),
    ],
)
def test_every_screen_that_checks_a_password_or_code_is_limited(
    gateway_stack: GatewayStack, strict_gateway: Process, tmp_path: Path, path: str, source: str
) -> None:
    client = Client(gateway_stack, tmp_path, source=source)
    url = _url(strict_gateway)
    token = client.csrf("/enroll/auth", url)  # one token per session, for every form
    statuses = [client.post(path, url, csrf=token, code="123456")[0] for _ in range(2)]
    assert 429 not in statuses
    status, headers, body = client.post(path, url, csrf=token, code="123456")
    assert status == 429
    assert 1 <= int(headers["retry-after"]) <= 60
    assert "しばらくお待ちください" in body and "ほど待ってからもう一度お試しください" in body
    assert f'href="{path}"' in body  # back to the form
    assert headers["content-type"] == "text/html; charset=utf-8"
    # The screens themselves and the other forms stay open to this client.
    assert client("/enroll/auth", url=url)[0] == 200
    assert client.post("/logout", url, csrf=token)[0] == 303


def test_only_a_trusted_proxy_names_the_client(
    gateway_stack: GatewayStack, strict_gateway: Process, tmp_path: Path
) -> None:
    url = _url(strict_gateway)

    def attempts(client: Client, forwarded: str, count: int) -> list[int]:
        token = client.csrf("/enroll/auth", url)
        return [
            client(
                "/enroll/auth",
                "-H",
                f"X-Forwarded-For: {forwarded}",
                "--data-urlencode",
                f"csrf={token}",
                url=url,
            )[0]
            for _ in range(count)
        ]

    proxy = Client(gateway_stack, tmp_path, source="127.0.0.5")
    # A form the CA refused leads back to it (303); the limit refuses with 429.
    assert attempts(proxy, "198.51.100.1", 3) == [303, 303, 429]
    assert attempts(proxy, "198.51.100.2", 1) == [303]  # another client behind the proxy
    # A client behind the proxy cannot pose as another by writing its own entry first.
    assert attempts(proxy, "198.51.100.2, 198.51.100.1", 1) == [429]
    # From anyone else X-Forwarded-For is ignored: the same address, whatever it claims.
    direct = Client(gateway_stack, tmp_path, source="127.0.0.6")
    assert attempts(direct, "198.51.100.3", 2) == [303, 303]
    assert attempts(direct, "198.51.100.4", 1) == [429]
    with redis.Redis.from_url(gateway_stack.ca.redis_url) as client:
        keys = {k.decode().rsplit(":", 1)[1] for k in client.keys("gw:ratelimit:auth:*")}
    assert {"198.51.100.1", "198.51.100.2", "127.0.0.6"} <= keys
    assert not {"198.51.100.3", "198.51.100.4", "127.0.0.5"} & keys


def test_without_redis_no_password_is_checked(gateway_stack: GatewayStack, tmp_path: Path) -> None:
    user_id, _, _ = gateway_stack.new_user("spry0002")
    with throwaway_redis(tmp_path) as (redis_url, pid):
        gateway = gateway_stack.start_gateway(
            "own-redis",
            GATEWAY_REDIS_URL=redis_url,
            GATEWAY_AUTH_RATE_PER_MINUTE="600",
            GATEWAY_AUTH_BURST="100",
        )
        client = Client(gateway_stack, tmp_path, source="127.0.0.7")
        url = _url(gateway)
        token = client.csrf("/enroll/auth", url)
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        status, _, _ = client.post(
            "/enroll/auth", url, csrf=token, user_id=user_id, password="Wr0ng-Pass!"
        )
    # Refused before the CA was asked, with the Japanese page of a Redis outage.
    assert status == 503
    shown = gateway_stack.operator_api().GetUser(  # type: ignore[attr-defined]
        pb.GetUserRequest(user_id=user_id)
    )
    assert shown.consecutive_failures == 0
    assert re.search(r"ConnectionError|Redis", gateway.log())
