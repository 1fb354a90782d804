"""PostgreSQL goes away under load (issue 9, item 1): a ca-service process on a database of
the test's own, a gateway in front of it, and callers doing GetUser, ListCertificates,
Login, SignCsr, OCSP for answers that are never cached, protected pages and the login form.

First the CA's backends are terminated (pg_terminate_backend, three times); then the
database refuses connections for 10 s. Never INTERNAL or 500; while the database refuses,
only UNAVAILABLE/STORE_UNAVAILABLE, OCSP tryLater and the gateway's Japanese 503 page, with
gRPC health NOT_SERVING and the gateway's /-/health 503; within 2 s after the database is
back every call is answered correctly, without a restart.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from tests.faults import own_database
from tests.gateway.gateway_stack import start_gateway_stack
from tests.outage_load import Load, by_kind, unexpected
from tests.smtp_sink import SmtpSink
from tests.support import throwaway_redis

pytestmark = [pytest.mark.slow, pytest.mark.serial]

UNAVAILABLE = {"UNAVAILABLE/STORE_UNAVAILABLE", "tryLater", "503"}
REFUSAL_SECONDS = 10.0
RECOVERY_SECONDS = 2.0


def test_postgresql_outages_under_load(
    tmp_path: Path, postgres_server: str, smtp: SmtpSink
) -> None:
    with (
        own_database(postgres_server) as database,
        throwaway_redis(tmp_path / "redis") as (redis_url, _),
    ):
        stack = start_gateway_stack(
            tmp_path / "stack", redis_url, smtp, CA_DATABASE_URL=database.url
        )
        try:
            user_id, password, email = stack.new_user("outage01")
            cert = stack.issue(user_id, password, email, tmp_path / "cert")
            load = Load(stack, user_id, password, cert).start()
            try:
                time.sleep(2)
                terminated_at = time.monotonic()
                terminated = 0
                for _ in range(3):
                    terminated += database.terminate_backends()
                    time.sleep(1)
                refused_at = time.monotonic()
                database.refuse_connections()
                time.sleep(REFUSAL_SECONDS)
                allowing_at = time.monotonic()
                database.allow_connections()
                back_at = time.monotonic()
                time.sleep(RECOVERY_SECONDS + 2)
            finally:
                load.stop()
        finally:
            stack.stop()
    ca_log = stack.ca.logs[0].read_text()
    gateway_log = stack.gateways[0].log()

    # Never INTERNAL, 500, a deadline or a wrong answer; only the documented unavailability.
    table = by_kind(load.answers)
    wrong = unexpected(table, UNAVAILABLE)
    assert not any(wrong.values()), (wrong, table)
    assert set(table) == {
        "GetUser",
        "ListCertificates",
        "Login",
        "SignCsr",
        "OCSP",
        "gateway /echo",
        "gateway login",
    }

    # Terminated backends: the connections are replaced (reads retried once).
    assert terminated >= 3
    during_termination = load.between(terminated_at, refused_at)
    assert during_termination

    # While the database refuses connections (after the gateway's 0.5 s user cache), every
    # call that needs the store is refused as unavailable.
    refusing = load.between(refused_at + 1.0, allowing_at)
    assert refusing
    assert all(a.result in UNAVAILABLE for a in refusing), by_kind(refusing)
    assert set(by_kind(refusing)) == set(table)  # every kind was tried and refused
    load.assert_unhealthy(refused_at, allowing_at)

    # Back: every call asked 2 s after the database returned is answered correctly, and
    # health is SERVING / 200 by then.
    serving_after, recovered_after = load.assert_recovered(back_at, RECOVERY_SECONDS)
    assert all(s == "SERVING" for t, s in load.ca_health if t >= back_at + RECOVERY_SECONDS)

    # One log line when the store went away and one when it came back; no traceback.
    assert "Traceback" not in ca_log and "failed unexpectedly" not in ca_log
    assert "request handler failed" not in gateway_log
    down_lines = ca_log.count("SQL store unavailable")
    assert 1 <= down_lines <= 2, down_lines  # the refusal (and at most a blip before it)
    assert ca_log.count("SQL store available again") == down_lines

    latency = statistics.median(a.answered - a.asked for a in refusing)
    termination_failures = sum(a.result != "ok" for a in during_termination)
    print(
        f"\nPostgreSQL outage: terminations {terminated} backends, "
        f"{termination_failures}/{len(during_termination)} calls not ok meanwhile; "
        f"refusal {REFUSAL_SECONDS:g} s: {len(refusing)} calls, all unavailable "
        f"(median {latency * 1000:.0f} ms); "
        f"recovered (first correct answer per kind) after {recovered_after:.2f} s; "
        f"health SERVING after {serving_after:.2f} s; "
        f"{sum(sum(r.values()) for r in table.values())} calls in all, 0 INTERNAL"
    )
