"""Fixtures of the API tests that need a whole stack: per test module, an SMTP sink and two
ca-service processes sharing one database and one (throw-away) Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.smtp_sink import SmtpSink
from tests.stack_support import Stack, start_stack


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, smtp: SmtpSink
) -> Iterator[Stack]:
    built = start_stack(tmp_path_factory.mktemp("stack"), redis_server, smtp)
    yield built
    for server in built.servers:
        server.stop()
