"""Fixtures for the mail tests: an injected clock and a real SMTP server (aiosmtpd) that can
be stopped and restarted on its port (the migrated store, SQLite and PostgreSQL, is
tests/conftest.py's ``database``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import START, FakeClock
from tests.smtp_sink import SmtpSink
from tests.support import free_port


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink(free_port()).start()
    yield sink
    sink.stop()
