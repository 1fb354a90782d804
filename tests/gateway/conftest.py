"""Per test module: an SMTP sink and a whole stack (CA, sample upstream, gateway)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.gateway_stack import GatewayStack, start_gateway_stack
from tests.smtp_sink import SmtpSink


@pytest.fixture(scope="module")
def gateway_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, smtp: SmtpSink
) -> Iterator[GatewayStack]:
    stack = start_gateway_stack(tmp_path_factory.mktemp("gw"), redis_server, smtp)
    yield stack
    stack.stop()
