"""The suite's own PostgreSQL, for a machine whose server does not run (tests/conftest.py,
``postgres_server``): a real cluster that serves, and nothing of it left afterwards."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.support import throwaway_postgres


def _command_lines() -> list[str]:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # ended meanwhile
    return lines


def test_a_throwaway_postgresql_serves_and_leaves_nothing_behind() -> None:
    with throwaway_postgres() as url:
        assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith("/test")
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE TABLE t (x integer PRIMARY KEY)")
            connection.execute("INSERT INTO t VALUES (1)")
            assert connection.execute("SELECT x FROM t").fetchall() == [(1,)]
            # Superuser, as the fault tests need (pg_terminate_backend of their backends).
            assert connection.execute("SHOW is_superuser").fetchone() == ("on",)
            row = connection.execute("SHOW data_directory").fetchone()
            assert row is not None
            data_directory = str(row[0])
        assert any(data_directory in line for line in _command_lines())
    assert not Path(data_directory).exists()
    assert not any(data_directory in line for line in _command_lines())
