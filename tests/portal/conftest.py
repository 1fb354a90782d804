"""Per test module: the portal behind a real gateway (``tests/portal/portal_stack.py``), on
SQLite; a module that needs another database declares its own ``stack``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.portal.portal_stack import PortalStack, start_portal_stack
from tests.smtp_sink import SmtpSink


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, smtp: SmtpSink
) -> Iterator[PortalStack]:
    stack = start_portal_stack(tmp_path_factory.mktemp("portal"), redis_server, smtp)
    yield stack
    stack.stop()
