"""One SQL database, SQLite or PostgreSQL, behind one small interface.

Writes go through a single writer thread that groups concurrent transactions into one
commit (group commit): each caller's work still commits durably before its await returns,
but many callers share one fsync. Reads run on a small pool of reader threads, each with
its own connection. SQL is written once with ``?`` placeholders; the PostgreSQL adapter
rewrites them to ``%s``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from ca_service.errors import CAError, ConfigurationError, StoreError

__all__ = ["Cursor", "Database", "IntegrityError", "open_database"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Dialect = Literal["sqlite", "postgresql"]

# Upper bound of transactions folded into one commit.
_MAX_GROUP = 512
# A commit that starts within this many seconds of the previous one counts as "under load".
_BUSY_WINDOW = 0.01


class IntegrityError(Exception):
    """A constraint (unique key, foreign key) rejected a write."""


class _DbApiCursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    @property
    def rowcount(self) -> int: ...


class Cursor:
    """What a unit of work sees: execute/fetch with ``?`` placeholders in either dialect."""

    def __init__(self, raw: _DbApiCursor, dialect: Dialect) -> None:
        self._raw = raw
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self._raw.execute(self._sql(sql), params)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._raw.executemany(self._sql(sql), rows)

    @property
    def rowcount(self) -> int:
        return int(self._raw.rowcount)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._raw.fetchone()
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._raw.fetchall()]


@dataclass
class _Job:
    work: Callable[[Cursor], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Connection:
    """A DB-API connection with explicit transactions, in one of the two dialects."""

    dialect: Dialect
    raw: Any
    integrity_errors: tuple[type[BaseException], ...] = field(default=())

    def begin(self, immediate: bool = False) -> None:
        if self.dialect == "sqlite":
            self.raw.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def cursor(self) -> Cursor:
        return Cursor(self.raw.cursor(), self.dialect)

    def commit(self) -> None:
        self.raw.commit() if self.dialect == "postgresql" else self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.dialect == "postgresql":
            self.raw.rollback()
        elif self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()


def _connect_sqlite(path: str) -> _Connection:
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    raw.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit is fsynced, so a committed certificate survives a power cut.
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute("PRAGMA busy_timeout=30000")
    return _Connection("sqlite", raw, (sqlite3.IntegrityError,))


def _connect_postgresql(url: str, *, autocommit: bool) -> _Connection:
    import psycopg

    raw = psycopg.connect(url, autocommit=autocommit)
    return _Connection("postgresql", raw, (psycopg.errors.IntegrityError,))


class Database:
    def __init__(
        self,
        dialect: Dialect,
        connect: Callable[[bool], _Connection],
        *,
        readers: int = 4,
        description: str,
        commit_delay: float = 0.0,
    ) -> None:
        self.dialect = dialect
        self.description = description
        self._commit_delay = commit_delay
        self._connect = connect
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_connection = connect(False)
        self._writer = threading.Thread(target=self._write_loop, name="sql-writer", daemon=True)
        self._writer.start()
        self._local = threading.local()
        self._reader_connections: list[_Connection] = []
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sql-reader")
        self._lock = threading.Lock()
        self._closed = False

    # -- writes -----------------------------------------------------------------------

    async def write(self, work: Callable[[Cursor], T]) -> T:
        """Runs ``work`` in a transaction; returns once that transaction is committed."""
        if self._closed:
            raise StoreError("database is closed")
        loop = asyncio.get_running_loop()
        job = _Job(work, loop, loop.create_future())
        self._jobs.put(job)
        result: T = await job.future
        return result

    def write_sync(self, work: Callable[[Cursor], T]) -> T:
        """Runs ``work`` in its own transaction on the caller's thread (start-up, CLI)."""
        connection = self._connect(False)
        try:
            connection.begin(immediate=True)
            result = work(connection.cursor())
            connection.commit()
            return result
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()

    def _reconnect_writer(self) -> None:
        """After a failure that was not a constraint (lost connection, disk error) the
        connection may be unusable; the next group starts on a fresh one."""
        try:
            self._writer_connection.close()
        except Exception:
            log.debug("closing the failed writer connection raised", exc_info=True)
        try:
            self._writer_connection = self._connect(False)
        except Exception as exc:
            log.error("cannot reconnect the SQL writer: %s", type(exc).__name__)

    def _collect(self, batch: list[_Job], deadline: float | None) -> bool:
        """Adds waiting jobs to ``batch`` (until ``deadline`` if given); False on shutdown."""
        while len(batch) < _MAX_GROUP:
            try:
                if deadline is None:
                    job = self._jobs.get_nowait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    job = self._jobs.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                self._jobs.put(None)
                return False
            batch.append(job)
        return True

    def _write_loop(self) -> None:
        last_commit = 0.0
        while True:
            first = self._jobs.get()
            if first is None:
                self._writer_connection.close()
                return
            batch = [first]
            running = self._collect(batch, None)
            # Under sustained load (the previous commit just ended), wait a moment for more
            # transactions so that they share one fsync instead of paying one each.
            busy = time.monotonic() - last_commit < _BUSY_WINDOW
            if running and busy and self._commit_delay > 0 and len(batch) < _MAX_GROUP:
                self._collect(batch, time.monotonic() + self._commit_delay)
            self._run_group(batch)
            last_commit = time.monotonic()

    def _run_group(self, batch: list[_Job]) -> None:
        grouped = False
        if len(batch) > 1:
            try:
                self._run_in_transaction(self._writer_connection, batch)
                grouped = True
            except Exception:
                # Something in the group failed (a constraint, a business rule, the
                # connection): the group was rolled back; run each alone so that only the
                # guilty transaction fails.
                log.debug("group of %d failed; retrying one by one", len(batch))
        if not grouped:
            for job in batch:
                self._run_alone(job)
        for job in batch:
            job.loop.call_soon_threadsafe(_settle, job)

    def _run_alone(self, job: _Job) -> None:
        connection = self._writer_connection
        job.result, job.error = None, None
        try:
            self._run_in_transaction(connection, [job])
        except connection.integrity_errors as exc:
            job.error = IntegrityError(str(exc))
        except CAError as exc:
            job.error = exc
        except Exception as exc:
            log.error("database write failed: %s", type(exc).__name__)
            job.error = StoreError(f"database write failed: {type(exc).__name__}")
            self._reconnect_writer()

    @staticmethod
    def _run_in_transaction(connection: _Connection, batch: list[_Job]) -> None:
        # IMMEDIATE takes SQLite's write lock up front, so a job that reads before it writes
        # waits (busy_timeout) for another process's commit instead of failing with BUSY.
        connection.begin(immediate=True)
        try:
            cursor = connection.cursor()
            for job in batch:
                job.result = job.work(cursor)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise

    # -- reads ------------------------------------------------------------------------

    def _reader(self) -> _Connection:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect(True)
            self._local.connection = connection
            with self._lock:
                self._reader_connections.append(connection)
        return connection

    def _read_sync(self, work: Callable[[Cursor], T]) -> T:
        connection = self._reader()
        if connection.dialect == "sqlite":
            return work(connection.cursor())
        with connection.raw.transaction():
            return work(connection.cursor())

    async def read(self, work: Callable[[Cursor], T]) -> T:
        if self._closed:
            raise StoreError("database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_sync, work)

    def read_sync(self, work: Callable[[Cursor], T]) -> T:
        return self._read_sync(work)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._writer.join(timeout=30)
        self._readers.shutdown(wait=True)
        with self._lock:
            for connection in self._reader_connections:
                connection.close()


def _settle(job: _Job) -> None:
    if job.future.done():
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.result)


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative.db`` → ``relative.db``; ``sqlite:////abs/x.db`` → ``/abs/x.db``."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or len(path) < 2:
        raise ConfigurationError(f"cannot read an SQLite path from {url!r}; use sqlite:///PATH")
    return Path(path[1:])


def open_database(url: str, *, readers: int = 4, commit_delay: float = 0.0) -> Database:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://...``."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return Database(
            "sqlite",
            lambda _autocommit: _connect_sqlite(str(path)),
            readers=readers,
            description=f"sqlite:{path}",
            commit_delay=commit_delay,
        )
    if scheme in ("postgresql", "postgres"):
        return Database(
            "postgresql",
            lambda autocommit: _connect_postgresql(url, autocommit=autocommit),
            readers=readers,
            description="postgresql",
            commit_delay=commit_delay,
        )
    raise ConfigurationError(
        f"unsupported database URL scheme {scheme!r}; use sqlite or postgresql"
    )
