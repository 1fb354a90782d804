"""Issue 9 items 3 and 4 at the gateway, against real ca-gateway processes.

Slow connections (item 3): 3,000 of them, half trickling a TLS ClientHello and half a request
head over TLS, one byte a second, against a gateway capped at 1,000 connections: new clients
keep being answered (HTTPS GET of /-/health and of the login screen, each on a new TLS
connection) while the oldest slow connections are evicted and the rest are closed at the
head deadline.

Memory (item 4): waves of aborted TLS handshakes and a wave of idle TLS connections closed by
the server leave the gateway's RSS where it was after the first wave.
"""

from __future__ import annotations

import http.client
import itertools
import ssl
import time
from pathlib import Path

import pytest

from tests.flood import Outcome, Probe, outcomes, start_flood
from tests.gateway.gateway_stack import GatewayStack

pytestmark = [pytest.mark.slow, pytest.mark.serial]

HEAD_TIMEOUT = 4.0
CAP = 1_000


def _summary(results: list[Outcome]) -> tuple[list[Outcome], list[Outcome]]:
    """(evicted before their deadline, closed at it)."""
    evicted = [r for r in results if 0 <= r.lifetime < HEAD_TIMEOUT - 0.25]
    at_deadline = [r for r in results if r.lifetime >= HEAD_TIMEOUT - 0.25]
    return evicted, at_deadline


def test_slow_connections_leave_new_clients_answered(gateway_stack: GatewayStack) -> None:
    gateway = gateway_stack.start_gateway(
        "gateway-floods",
        GATEWAY_MAX_CONNECTIONS=str(CAP),
        GATEWAY_HEAD_TIMEOUT=str(HEAD_TIMEOUT),
    )
    assert f"up to {CAP} connections" in gateway.log()
    context = ssl.create_default_context(cafile=str(gateway_stack.trust))

    def get(path: str) -> None:
        """One GET on a new TLS connection, as a new client (or a load balancer) makes."""
        connection = http.client.HTTPSConnection(
            "localhost", gateway.port, context=context, timeout=5
        )
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200, (path, response.status, body[:300])
        finally:
            connection.close()

    # Ready first: /-/health says 503 until the revocation stream has proved the view fresh.
    deadline = time.monotonic() + 15
    while True:
        try:
            get("/-/health")
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the gateway did not become healthy"
            time.sleep(0.2)
    paths = itertools.cycle(["/-/health", "/login"])

    def probe() -> None:
        get(next(paths))

    floods = [
        start_flood(
            "127.0.0.1", gateway.port, mode, 1_500, interval=1.0, rate=rate, hold=HEAD_TIMEOUT + 20
        )
        for mode, rate in (("tls-handshake", 300), ("tls-head", 150))
    ]
    with Probe(probe, period=0.05) as probes:
        handshakes, heads = (outcomes(flood, timeout=120) for flood in floods)
    gateway.stop()

    assert not probes.failures, probes.failures[:3]
    assert len(probes.seconds) >= 100 and probes.p99() < 0.100, (
        len(probes.seconds),
        probes.p99(),
    )
    for results in (handshakes, heads):
        assert all(r.opened >= 0 for r in results), [r.error for r in results if r.error][:3]
        lifetimes = [r.lifetime for r in results]
        # Closed by the server, although they kept sending (handshake included).
        assert min(lifetimes) >= 0 and max(lifetimes) < HEAD_TIMEOUT + 1.5, max(lifetimes)
        assert all(r.sent >= 3 for r in _summary(results)[1])
    evicted, at_deadline = _summary(handshakes + heads)
    assert len(evicted) >= 500 and len(at_deadline) >= 500, (len(evicted), len(at_deadline))
    log = gateway.log()
    assert "connection cap reached" in log
    # Ended connections are not answered (nor logged one by one).
    assert "broke off" not in log
    print(
        f"\ngateway flood: {len(evicted)} evicted, {len(at_deadline)} closed at the deadline; "
        f"probe (GET on a new TLS connection) p99 {probes.p99() * 1000:.1f} ms over "
        f"{len(probes.seconds)} probes"
    )


WAVE = 5_000
# Aborted handshakes opened per second. With each held 1 s after the server's
# answer, about 2,000 are half-open at once, as at 1,000/s held 2 s, in half the time.
WAVE_RATE = 2_000
IDLE_TIMEOUT = 10.0  # the idle wave's 5,000 connections are open at the same time
SETTLE = 4.0  # memory is handed back about a second after a flood has drained
STEADY = 0.5  # after the hand-back: the RSS no longer changes


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _settled_rss_mb(pid: int, before: float) -> float:
    """The RSS once the gateway has handed a flood's memory back, at most SETTLE seconds
    after the flood. It does so in one step (glibc's trim), ~1.3 s after the last connection
    closed; then the RSS stays flat. So instead of always waiting SETTLE: the RSS once it has
    fallen by at least half of what the flood added to ``before`` (the RSS before it; at
    least 1 MB) and then not changed for STEADY seconds; without such a fall (nothing handed
    back) the RSS at SETTLE, as before. A smaller fall (connections' objects freed before the
    trim) is not taken for the hand-back: read there, a wave measured 215 MB that the trim
    brought back to 79 MB a moment later. Reading early can only make the RSS look higher."""
    start = time.monotonic()
    at_end = last = _rss_mb(pid)
    fall = max(1.0, (at_end - before) / 2)
    changed_at = start
    while True:
        time.sleep(0.05)
        now, rss = time.monotonic(), _rss_mb(pid)
        if abs(rss - last) >= 0.1:
            last, changed_at = rss, now
        if now - start >= SETTLE or (last <= at_end - fall and now - changed_at >= STEADY):
            return rss


def test_rss_returns_after_aborted_handshakes_and_idle_connections(
    gateway_stack: GatewayStack,
) -> None:
    gateway = gateway_stack.start_gateway("gateway-memory", GATEWAY_HEAD_TIMEOUT=str(IDLE_TIMEOUT))
    assert gateway.process is not None
    pid = gateway.process.pid
    started = _rss_mb(pid)
    after: list[float] = []
    for _ in range(5):
        before = _rss_mb(pid)
        flood = start_flood(
            "127.0.0.1", gateway.port, "tls-abort", WAVE, interval=1, rate=WAVE_RATE, hold=10
        )
        results = outcomes(flood, timeout=180)
        assert all(r.opened >= 0 for r in results), [r.error for r in results if r.error][:3]
        after.append(_settled_rss_mb(pid, before))
    before = _rss_mb(pid)
    flood = start_flood(
        "127.0.0.1", gateway.port, "tls-idle", WAVE, interval=1, rate=1_000, hold=60
    )
    idle = outcomes(flood, timeout=240)
    final = _settled_rss_mb(pid, before)
    gateway.stop()

    assert all(r.opened >= 0 for r in idle), [r.error for r in idle if r.error][:3]
    # The server closed every idle connection at its deadline.
    lifetimes = sorted(r.lifetime for r in idle)
    assert lifetimes[0] > IDLE_TIMEOUT - 0.5 and lifetimes[-1] < IDLE_TIMEOUT + 3, (
        lifetimes[:3],
        lifetimes[-3:],
    )
    print(
        f"\ngateway RSS: start {started:.1f} MB, after each wave of {WAVE} aborted handshakes "
        + ", ".join(f"{mb:.1f}" for mb in after)
        + f" MB, after {WAVE} idle connections {final:.1f} MB"
    )
    assert max(after) < after[0] + 20 and final < after[0] + 20, (after, final)
