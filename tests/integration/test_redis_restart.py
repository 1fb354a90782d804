"""Redis is killed and started again under load (issue 9, item 2): a ca-service process and
a gateway, both on one throw-away redis-server (SIGKILL, then a new server on the same port,
empty). Never INTERNAL or 500, during or after; while Redis is down only the calls that need
it fail, with UNAVAILABLE/REDIS_UNAVAILABLE or the gateway's Japanese 503 page, gRPC health
says NOT_SERVING and the gateway's /-/health 503 with the cause; one log line each way per
process; everything works again within 2 s after the restart (no dead pooled connection
fails later)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from tests.faults import RestartableRedis
from tests.gateway.gateway_stack import start_gateway_stack
from tests.outage_load import Load, by_kind, unexpected
from tests.smtp_sink import SmtpSink

pytestmark = [pytest.mark.slow, pytest.mark.serial]

UNAVAILABLE = {"UNAVAILABLE/REDIS_UNAVAILABLE", "503"}
# What needs Redis: the lockout counter (GetUser shows it, Login counts), the gateway's
# sessions. Certificates, issuance and OCSP do not.
NEEDS_REDIS = {"GetUser", "Login", "gateway /echo", "gateway login"}
DOWN_SECONDS = 6.0
RECOVERY_SECONDS = 2.0


def test_redis_killed_and_restarted_under_load(tmp_path: Path, smtp: SmtpSink) -> None:
    redis = RestartableRedis(tmp_path / "redis").start()
    try:
        stack = start_gateway_stack(tmp_path / "stack", redis.url, smtp)
        try:
            user_id, password, email = stack.new_user("restart1")
            cert = stack.issue(user_id, password, email, tmp_path / "cert")
            load = Load(stack, user_id, password, cert).start()
            try:
                time.sleep(2)
                killed_at = time.monotonic()
                redis.kill()
                time.sleep(DOWN_SECONDS)
                restarting_at = time.monotonic()
                redis.start()
                back_at = time.monotonic()  # answering PING
                time.sleep(RECOVERY_SECONDS + 3)
            finally:
                load.stop()
        finally:
            stack.stop()
    finally:
        redis.stop()
    ca_log = stack.ca.logs[0].read_text()
    gateway_log = stack.gateways[0].log()

    table = by_kind(load.answers)
    wrong = unexpected(table, UNAVAILABLE)
    assert not any(wrong.values()), (wrong, table)
    for kind in set(table) - NEEDS_REDIS:
        assert set(table[kind]) == {"ok"}, (kind, table[kind])

    # Down (after the gateway's 0.5 s user cache): whatever needs Redis is unavailable.
    down = load.between(killed_at + 1.0, restarting_at)
    needing = [a for a in down if a.kind in NEEDS_REDIS]
    assert needing and all(a.result in UNAVAILABLE for a in needing), by_kind(needing)
    assert {a.kind for a in needing} == NEEDS_REDIS
    for body in load.assert_unhealthy(killed_at, restarting_at):
        assert body["redis"]["available"] is False, body  # type: ignore[index]

    # Back: every call asked 2 s after the restart is answered correctly, health is back.
    serving_after, recovered_after = load.assert_recovered(back_at, RECOVERY_SECONDS)

    # One line when Redis went and one when it came back, per process; no traceback.
    for log in (ca_log, gateway_log):
        assert log.count("Redis unavailable") == 1, log
        assert log.count("Redis available again") == 1
    assert "Traceback" not in ca_log and "failed unexpectedly" not in ca_log
    assert "request handler failed" not in gateway_log

    latency = statistics.median(a.answered - a.asked for a in needing)
    print(
        f"\nRedis restart: down {DOWN_SECONDS:g} s, {len(needing)} calls that need it, all "
        f"unavailable (median {latency * 1000:.0f} ms); recovered (first correct answer per "
        f"kind) after "
        f"{recovered_after:.2f} s; health SERVING after {serving_after:.2f} s; "
        f"{sum(sum(r.values()) for r in table.values())} calls in all, 0 INTERNAL, 0 500"
    )
