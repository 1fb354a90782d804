from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.smtp_sink import SmtpSink
from tests.support import CaProcess, ca_env, init_ca, throwaway_redis

POSTGRES_URL = os.environ.get("CA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_problem() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_problem()
    if problem is not None:
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({problem})"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the PostgreSQL tests")
        pytest.skip(message)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty schema on the test server, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="session")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("ca") / "data"
    init_ca(data_dir)
    return data_dir


@pytest.fixture(scope="session")
def ca_server(ca_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaProcess]:
    log = tmp_path_factory.mktemp("logs") / "ca-service.log"
    server = CaProcess(ca_dir, ca_env(ca_dir), log).start()
    yield server
    server.stop()


# -- Redis (tests/redis) -----------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away redis-server on a free loopback port (never the shared one), no persistence."""
    try:
        with throwaway_redis(tmp_path_factory.mktemp("redis")) as (url, _pid):
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The throw-away server's database 0, emptied (FLUSHDB) before the test."""
    import redis

    with redis.Redis.from_url(redis_server) as client:
        client.flushdb()
    return redis_server


# -- SMTP (tests/integration, tests/gateway) ---------------------------------------------


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    """An aiosmtpd server capturing the CA's mail, per test module."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()
