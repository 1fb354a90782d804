"""The CA's cap on concurrent password hashing (issue 9, item 12), with a CA whose hashes are
slow (Argon2id t=12, ~0.2 s) and whose cap is one running and two waiting: password checks
beyond that are answered RESOURCE_EXHAUSTED (reason BUSY) at once over gRPC, count nothing,
and the gateway shows a Japanese 503 page with Retry-After."""

from __future__ import annotations

import asyncio
import secrets
import ssl
import statistics
import time
from collections.abc import Iterator

import grpc
import pytest

from ca_service.api import pb
from ca_service.client import aio_secure_channel, api_error, stub
from tests.gateway.gateway_stack import GatewayStack, start_gateway_stack
from tests.gateway.spray import Connection, auth_post, random_user_id
from tests.smtp_sink import SmtpSink

pytestmark = [pytest.mark.slow, pytest.mark.serial]

CAP, QUEUE = 1, 2


@pytest.fixture(scope="module")
def gateway_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, smtp: SmtpSink
) -> Iterator[GatewayStack]:
    stack = start_gateway_stack(
        tmp_path_factory.mktemp("cap"),
        redis_server,
        smtp,
        CA_PASSWORD_HASH_CONCURRENCY=str(CAP),
        CA_PASSWORD_HASH_QUEUE=str(QUEUE),
        CA_PASSWORD_HASH_TIME_COST="12",
    )
    yield stack
    stack.stop()


async def _burst(stack: GatewayStack, prefix: str) -> list[tuple[str, str, float, dict[str, str]]]:
    """8 Login, 8 StartAuthentication and 8 RegisterMaster calls at once, unknown IDs:
    (method, outcome, seconds, metadata) each."""
    channel = aio_secure_channel(stack.ca.servers[0].address, stack.ca.gateway)
    api = stub(channel)

    async def call(method: str, request: object) -> tuple[str, str, float, dict[str, str]]:
        started = time.monotonic()
        try:
            await getattr(api, method)(request)
        except grpc.aio.AioRpcError as error:
            problem = api_error(error)
            outcome = f"{problem.code.name}/{problem.reason}"
            return method, outcome, time.monotonic() - started, problem.metadata
        return method, "OK", time.monotonic() - started, {}

    calls = []
    for _ in range(8):
        calls.append(
            call("Login", pb.LoginRequest(user_id=random_user_id(prefix), password="Wr0ng-1!"))
        )
        calls.append(
            call(
                "StartAuthentication",
                pb.StartAuthenticationRequest(user_id=random_user_id(prefix), password="Wr0ng-2!"),
            )
        )
        calls.append(
            call(
                "RegisterMaster",
                pb.RegisterMasterRequest(
                    organization_id=secrets.token_hex(5), initial_password="AAAA-BBBB-CCCC-DDDD"
                ),
            )
        )
    try:
        await channel.channel_ready()
        return list(await asyncio.gather(*calls))
    finally:
        await channel.close()


def test_password_checks_beyond_the_cap_are_refused_busy_over_grpc(
    gateway_stack: GatewayStack,
) -> None:
    answers = asyncio.run(_burst(gateway_stack, "cq"))
    outcomes = [outcome for _, outcome, _, _ in answers]
    busy = "RESOURCE_EXHAUSTED/BUSY"
    wrong = "UNAUTHENTICATED/INVALID_CREDENTIALS"
    print(f"\n24 password checks at once: {outcomes.count(wrong)} checked, ", end="")
    print(f"{outcomes.count(busy)} BUSY")
    assert set(outcomes) == {busy, wrong}, outcomes
    # All 24 arrived while the first check (~0.2 s) ran: one running and two waiting were
    # admitted, the rest refused; a check that ended early may have let one or two more in.
    assert QUEUE + CAP <= outcomes.count(wrong) <= QUEUE + CAP + 3
    refused = [a for a in answers if a[1] == busy]
    assert all(metadata == {"retry_after_seconds": "1"} for *_, metadata in refused)
    # Refused at once: sooner than the checks that were let in (each waits its turn).
    checked_seconds = [seconds for _, outcome, seconds, _ in answers if outcome == wrong]
    assert statistics.median(s for _, _, s, _ in refused) < statistics.median(checked_seconds)
    # A refused check counted nothing: only the checked IDs have lockout keys.
    checked = sum(1 for m, o, _, _ in answers if o == wrong and m != "RegisterMaster")
    assert gateway_stack.lockout_keys("cq*") == checked
    # Afterwards the next check is admitted as usual.
    again = asyncio.run(_burst(gateway_stack, "cr"))
    assert [o for _, o, _, _ in again].count(wrong) >= QUEUE + CAP


def test_the_gateway_shows_a_japanese_busy_page(gateway_stack: GatewayStack) -> None:
    async def at_once(count: int) -> list[tuple[int, bytes, bytes]]:
        """``count`` connections with a form each, then all their POSTs at once."""
        context = ssl.create_default_context(cafile=str(gateway_stack.trust))
        port = gateway_stack.gateways[0].port
        connections = [Connection(port, "127.0.0.1", context) for _ in range(count)]
        try:
            forms = [await connection.open_form() for connection in connections]
            posts = [
                connection.exchange(auth_post(cookie, csrf, random_user_id("cs"), "Wr0ng-3!"))
                for connection, (cookie, csrf) in zip(connections, forms, strict=True)
            ]
            return list(await asyncio.gather(*posts))
        finally:
            for connection in connections:
                connection.close()

    answers = asyncio.run(at_once(12))
    statuses = [status for status, _, _ in answers]
    # A checked (wrong) password answers with a redirect back to the form (POST/redirect/GET);
    # one that found every hashing slot taken, the busy page.
    assert set(statuses) <= {303, 503} and statuses.count(503) >= 3, statuses
    for status, head, body in answers:
        if status == 503:
            assert b"\r\nRetry-After: 1\r\n" in head
            page = body.decode()
            assert "ただいま混み合っています" in page and "1秒ほど待ってから" in page
    assert "request handler failed" not in gateway_stack.gateways[0].log()
