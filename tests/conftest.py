from __future__ import annotations

import multiprocessing.resource_tracker
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ca_service.adapters.sql.database import Database
from tests import support
from tests.processes import ProcessInfo, descendants, kill, mentions, processes, wait_gone
from tests.smtp_sink import SmtpSink
from tests.support import (
    CaProcess,
    ca_env,
    init_ca,
    migrated_database,
    postgres_programs,
    throwaway_postgres,
    throwaway_redis,
)

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
def postgres_server() -> Iterator[str]:
    """The PostgreSQL server of the tests: ``CA_TEST_POSTGRES_URL``, by default the one on
    127.0.0.1:5432; when that one does not answer and none was named, a throw-away cluster
    of the suite's own (where the server's programs are installed: .ci/run installs them)."""
    problem = _postgres_problem()
    if problem is None:
        yield POSTGRES_URL
        return
    if "CA_TEST_POSTGRES_URL" not in os.environ and postgres_programs() is not None:
        with throwaway_postgres() as url:
            yield url
        return
    message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({problem})"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run the PostgreSQL tests")
    pytest.skip(message)


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


@pytest.fixture(scope="module", autouse=True)
def _password_hashing(request: pytest.FixtureRequest) -> Iterator[None]:
    """The CA processes a module starts hash passwords with cheap Argon2id parameters,
    unless the module measures time or load (marked `serial`): there the password checks'
    CPU is part of what is measured, so they keep the production parameters. Autouse at
    module scope: set before the module's stacks start (autouse fixtures come first)."""
    serial = any(mark.name == "serial" for mark in request.node.iter_markers())
    support.password_hashing.clear()
    if not serial:
        support.password_hashing.update(support.CHEAP_PASSWORD_HASHING)
    yield
    support.password_hashing.clear()


# -- the SQL store ------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated store, once on SQLite and once on PostgreSQL."""
    with migrated_database(database_url) as database:
        yield database


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite store, for tests whose subject is not the SQL dialect."""
    with migrated_database(f"sqlite:///{tmp_path / 'store.db'}") as database:
        yield database


@pytest.fixture(scope="session")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("ca") / "data"
    init_ca(data_dir)
    return data_dir


@pytest.fixture(scope="session")
def ca_server(
    ca_dir: Path, tmp_path_factory: pytest.TempPathFactory, redis_server: str
) -> Iterator[CaProcess]:
    log = tmp_path_factory.mktemp("logs") / "ca-service.log"
    # With a Redis: without one the CA's health says NOT_SERVING.
    env = ca_env(ca_dir, CA_REDIS_URL=redis_server, CA_REDIS_PREFIX="ca-server:")
    server = CaProcess(ca_dir, env, log).start()
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


# -- no process left behind -----------------------------------------------------------------

_BASE_TEMP: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def _session_base_temp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Remembers this session's temporary base directory: every data directory, log and
    socket of the processes the tests start lies under it."""
    _BASE_TEMP.append(tmp_path_factory.getbasetemp())


def _left_behind() -> list[ProcessInfo]:
    """Running processes this session started: descendants of this process (except its own
    multiprocessing resource tracker, which ends with it) and orphans whose command line or
    environment names this session's temporary directory (a CA_DATA_DIR, a redis --dir)."""
    own_tracker = getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)
    table = processes()
    found = {info.pid: info for info in descendants(os.getpid(), table)}
    for base in _BASE_TEMP:
        needle = str(base) + os.sep
        for info in table.values():
            if info.pid != os.getpid() and mentions(info.pid, needle):
                found[info.pid] = info
    return [info for info in found.values() if info.running and info.pid not in (own_tracker, None)]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a test that mostly waits (marker ``waits``) go first, in their own
    order: with ``--dist loadfile`` such a module, collected late, ran alone at the end of
    the parallel part while the other processes had finished (a minute of idle cores);
    first, its waiting overlaps their computing."""
    waiting = {item.module for item in items if item.get_closest_marker("waits")}
    items.sort(key=lambda item: item.module not in waiting)  # stable: order kept otherwise


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every fixture is torn down: a process the suite started and left running
    fails the run (and is killed, so that it does not run on for hours)."""
    left = _left_behind()
    if not left:
        return
    still = set(wait_gone([info.pid for info in left], timeout=5))
    left = [info for info in left if info.pid in still]
    if not left:
        return
    kill(info.pid for info in left)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{info.pid} (parent {info.ppid}): {info.command[:200]}" for info in left]
    if reporter is not None:
        reporter.write_sep("=", "processes left running by the test session (now killed)")
        for line in lines:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
