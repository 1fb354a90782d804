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
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from ca_service.errors import ConfigurationError, StoreError
from ca_service.shared.availability import Availability

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


# SQLite result codes (the primary code, the low byte of extended codes) that say the store
# could not do its work, not that the statement was wrong: BUSY, LOCKED, NOMEM, READONLY,
# INTERRUPT, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
_SQLITE_FAILURES = frozenset({5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 26})


def _sqlite_failed(error: BaseException) -> bool:
    if isinstance(error, sqlite3.ProgrammingError):
        return "closed" in str(error)  # "Cannot operate on a closed database."
    if isinstance(error, sqlite3.Error) and not isinstance(error, sqlite3.IntegrityError):
        code = getattr(error, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_FAILURES
    return False


def _integrity_errors(dialect: Dialect) -> tuple[type[BaseException], ...]:
    if dialect == "sqlite":
        return (sqlite3.IntegrityError,)
    import psycopg

    return (psycopg.errors.IntegrityError,)


def _postgresql_failed(error: BaseException) -> bool:
    import psycopg

    # OperationalError: connection lost or refused, server shutting down or terminating
    # the backend (57P01), cannot connect now, cancelled query; InterfaceError: the
    # connection object is closed. A deadlock or serialization failure is an
    # OperationalError too, but the connection is sound: see _postgresql_conflict.
    return isinstance(
        error, psycopg.OperationalError | psycopg.InterfaceError
    ) and not _postgresql_conflict(error)


def _too_busy(error: BaseException) -> StoreError:
    return StoreError(
        f"the database aborted the write {_CONFLICT_RETRIES + 1} times for conflicts with "
        f"other transactions ({type(error).__name__}); try again"
    )


def _postgresql_conflict(error: BaseException) -> bool:
    """PostgreSQL aborted the transaction to break a deadlock (40P01) or a serialization
    conflict (40001) with another transaction: nothing is wrong with the connection or the
    store, and the transaction succeeds when run again."""
    import psycopg

    return isinstance(error, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure)


def _sqlite_conflict(_error: BaseException) -> bool:
    return False  # one writer at a time; a busy database waits (busy_timeout)


# A transaction aborted by a conflict runs again this many times, after a short random
# pause that grows, before the caller is told the store is too busy.
_CONFLICT_RETRIES = 5
_CONFLICT_PAUSE = 0.01


def _conflict_pause(attempt: int) -> None:
    time.sleep(_CONFLICT_PAUSE * (2**attempt) * (0.5 + random.random()))


@dataclass
class _Connection:
    """A DB-API connection with explicit transactions, in one of the two dialects."""

    dialect: Dialect
    raw: Any
    # Which generation of connections this one belongs to (see Database._invalidate).
    generation: int = 0
    # A reader's connection while its thread runs a read on it.
    busy: bool = False

    def begin(self, immediate: bool = False) -> None:
        if self.dialect == "sqlite":
            self.raw.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def transaction_id(self) -> int | None:
        """PostgreSQL: the open transaction's ID, whose fate ``txid_status`` can tell after
        the connection is lost during COMMIT. SQLite: None."""
        if self.dialect != "postgresql":
            return None
        row = self.raw.execute("SELECT txid_current()").fetchone()
        return int(row[0])

    def in_transaction(self) -> bool:
        return bool(self.raw.in_transaction) if self.dialect == "sqlite" else True

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


def _rollback_quietly(connection: _Connection) -> None:
    """After a failure: on a lost connection the rollback fails too, and the server has
    rolled back already."""
    try:
        connection.rollback()
    except Exception:
        log.debug("rollback failed", exc_info=True)


def _close_quietly(connection: _Connection) -> None:
    try:
        connection.close()
    except Exception:
        log.debug("closing a failed connection raised", exc_info=True)


def _connect_sqlite(path: str) -> _Connection:
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    raw.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit is fsynced, so a committed certificate survives a power cut.
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute("PRAGMA busy_timeout=30000")
    return _Connection("sqlite", raw)


# A connection attempt to an unreachable server fails after this long (unless the URL sets
# connect_timeout); libpq's minimum is 2 s.
CONNECT_TIMEOUT_SECONDS = 3


def _with_connect_timeout(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    if "connect_timeout" in conninfo_to_dict(url):
        return url
    return make_conninfo(url, connect_timeout=CONNECT_TIMEOUT_SECONDS)


def _connect_postgresql(conninfo: str, *, autocommit: bool) -> _Connection:
    import psycopg

    return _Connection("postgresql", psycopg.connect(conninfo, autocommit=autocommit))


class _CommitFailed(Exception):
    """The connection failed while COMMIT was under way: the transaction may have committed."""

    def __init__(self, error: BaseException, xid: int | None, still_open: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.xid = xid
        # SQLite kept the transaction open (so it certainly did not commit).
        self.still_open = still_open


class Database:
    """Connections are opened when needed and replaced when they fail: a reader or the
    writer whose connection is lost (server restarted, backend terminated, disk error)
    reconnects by itself. While the database cannot be reached every call fails at once
    with :class:`StoreError` (UNAVAILABLE, ``STORE_UNAVAILABLE``); ``availability`` says so
    (one log line per outage) for the health check.

    Reads are idempotent: a read that fails on a broken connection runs once more on a
    fresh one. Writes are never applied twice: a transaction that failed before its COMMIT
    was sent cannot have committed and runs once more; one whose connection failed during
    COMMIT is looked up (PostgreSQL's ``txid_status``) — committed counts as done, aborted
    runs once more, and when the outcome cannot be known the caller gets ``StoreError``
    (metadata ``outcome=unknown``) rather than a second copy.
    """

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
        self.availability = Availability("SQL store")
        self._failed = _sqlite_failed if dialect == "sqlite" else _postgresql_failed
        self._conflict = _sqlite_conflict if dialect == "sqlite" else _postgresql_conflict
        self._integrity_errors = _integrity_errors(dialect)
        self._commit_delay = commit_delay
        self._connect = connect
        # While the database is unreachable, one connection attempt at a time.
        self._attempt = threading.Lock()
        self._lock = threading.Lock()  # the reader connections and the generation
        self._generation = 0
        self._reader_connections: list[_Connection] = []
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_connection: _Connection | None = self._open(False)
        self._writer = threading.Thread(target=self._write_loop, name="sql-writer", daemon=True)
        self._writer.start()
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sql-reader")
        self._closed = False

    # -- connections ------------------------------------------------------------------

    def _open(self, autocommit: bool) -> _Connection:
        """A new connection, or StoreError. While the database is known to be unreachable
        only one thread tries at a time; the others fail at once instead of each waiting
        for its own connection timeout."""
        waiting = not self.availability.available
        if waiting and not self._attempt.acquire(blocking=False):
            raise StoreError("the database is unreachable")
        try:
            connection = self._connect(autocommit)
            connection.generation = self._generation
            return connection
        except Exception as exc:
            if not self._failed(exc):
                raise
            self.availability.failed(exc)
            raise StoreError(f"cannot connect to the database: {type(exc).__name__}") from exc
        finally:
            if waiting:
                self._attempt.release()

    def _invalidate(self) -> None:
        """After a connection failed, every other connection is suspect too (a restarted
        server, terminated backends, a disk fault): each is replaced before its next use,
        and the idle readers' at once. SQLite needs this: it keeps a failed connection's
        file open until every connection to that file is closed, and new connections
        stumble over it until then."""
        with self._lock:
            self._generation += 1
            idle = [c for c in self._reader_connections if not c.busy]
            for connection in idle:
                self._reader_connections.remove(connection)
        for connection in idle:
            _close_quietly(connection)

    def _unavailable(self, error: BaseException) -> StoreError:
        self.availability.failed(error)
        return StoreError(f"the database connection failed: {type(error).__name__}")

    # -- writes -----------------------------------------------------------------------

    async def write(self, work: Callable[[Cursor], T]) -> T:
        """Runs ``work`` in a transaction; returns once that transaction is committed.
        ``work`` may run more than once (only one run commits): it must do nothing but
        SQL through its cursor."""
        if self._closed:
            raise StoreError("database is closed")
        loop = asyncio.get_running_loop()
        job = _Job(work, loop, loop.create_future())
        self._jobs.put(job)
        result: T = await job.future
        return result

    async def write_aside(self, work: Callable[[Cursor], T]) -> T:
        """Runs ``work`` once, in its own transaction on a connection of its own, off the
        writer thread: a long write (a CRL of tens of megabytes, seconds on a busy
        PostgreSQL) that must not hold up the group commits of every other write. SQLite
        takes one writer at a time whatever the connection, so there it is an ordinary
        ``write``. Not retried: the caller decides what a failure means."""
        if self._closed:
            raise StoreError("database is closed")
        if self.dialect == "sqlite":
            return await self.write(work)
        return await asyncio.to_thread(self.write_sync, work)

    def write_sync(self, work: Callable[[Cursor], T]) -> T:
        """Runs ``work`` in its own transaction on the caller's thread (start-up, CLI); a
        transaction aborted by a conflict with another runs again."""
        connection = self._open(False)
        try:
            for conflicts in range(_CONFLICT_RETRIES + 1):
                try:
                    connection.begin(immediate=True)
                    result = work(connection.cursor())
                    connection.commit()
                    return result
                except Exception as exc:
                    _rollback_quietly(connection)
                    if self._conflict(exc) and conflicts < _CONFLICT_RETRIES:
                        _conflict_pause(conflicts)
                        continue
                    if self._conflict(exc):
                        raise _too_busy(exc) from exc
                    if self._failed(exc):
                        raise self._unavailable(exc) from exc
                    raise
            raise AssertionError("unreachable")
        finally:
            _close_quietly(connection)

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
                if self._writer_connection is not None:
                    _close_quietly(self._writer_connection)
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
        try:
            self._transact(batch)
        except StoreError as exc:
            # The store failed, not a transaction: every job of the group gets the answer.
            for job in batch:
                job.result, job.error = None, exc
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch[0], exc)
            else:
                # Something in the group failed (a constraint, a business rule): the group
                # was rolled back; run each alone so that only the guilty one fails.
                log.debug("group of %d failed; retrying one by one", len(batch))
                for job in batch:
                    self._run_alone(job)
        for job in batch:
            job.loop.call_soon_threadsafe(_settle, job)

    def _run_alone(self, job: _Job) -> None:
        try:
            self._transact([job])
        except Exception as exc:
            self._fail(job, exc)

    def _fail(self, job: _Job, error: Exception) -> None:
        job.result = None
        if isinstance(error, self._integrity_errors):
            job.error = IntegrityError(str(error))
        else:
            job.error = error  # a business rule (CAError), StoreError, or a bug

    def _transact(self, batch: list[_Job]) -> None:
        """Runs ``batch`` in one transaction on the writer connection, at most twice (see
        the class documentation); raises StoreError when the store failed."""
        attempt = conflicts = 0
        while attempt < 2:
            if (
                self._writer_connection is not None
                and self._writer_connection.generation != self._generation
            ):
                self._drop_writer()
            connection = self._writer_connection or self._open(False)
            self._writer_connection = connection
            try:
                self._run_in_transaction(connection, batch)
            except _CommitFailed as failed:
                self._drop_writer()
                committed = self._outcome(failed)
                if committed:
                    self.availability.succeeded()
                    return
                if committed is None:
                    self.availability.failed(failed.error)
                    raise StoreError(
                        "the database connection failed during COMMIT; the write may or may "
                        "not have been applied",
                        metadata={"outcome": "unknown"},
                    ) from failed.error
                error: BaseException = failed.error
            except Exception as exc:
                if self._conflict(exc):
                    # Rolled back; the connection stays: the batch runs again on it.
                    if conflicts >= _CONFLICT_RETRIES:
                        raise _too_busy(exc) from exc
                    log.debug("write aborted by a conflict (%s); again", type(exc).__name__)
                    _conflict_pause(conflicts)
                    conflicts += 1
                    continue
                if not self._failed(exc):
                    raise
                self._drop_writer()
                error = exc
            else:
                self.availability.succeeded()
                return
            attempt += 1
            log.debug("write attempt %d failed: %s", attempt, type(error).__name__)
        raise self._unavailable(error)

    def _drop_writer(self) -> None:
        if self._writer_connection is not None:
            _close_quietly(self._writer_connection)
            self._writer_connection = None
            self._invalidate()

    def _run_in_transaction(self, connection: _Connection, batch: list[_Job]) -> None:
        # IMMEDIATE takes SQLite's write lock up front, so a job that reads before it writes
        # waits (busy_timeout) for another process's commit instead of failing with BUSY.
        connection.begin(immediate=True)
        try:
            xid = connection.transaction_id()
            cursor = connection.cursor()
            for job in batch:
                job.result = job.work(cursor)
        except BaseException:
            _rollback_quietly(connection)
            raise
        try:
            connection.commit()
        except Exception as exc:
            still_open = connection.in_transaction()
            _rollback_quietly(connection)
            if self._failed(exc):
                raise _CommitFailed(exc, xid, still_open) from exc
            raise  # e.g. a deferred constraint: certainly not committed

    def _outcome(self, failed: _CommitFailed) -> bool | None:
        """Whether the transaction whose COMMIT failed committed: True, False, or None when
        that cannot be known."""
        if self.dialect == "sqlite":
            # A COMMIT that left the transaction open did not happen. Otherwise SQLite may
            # have rolled back, or (an fsync that failed after the commit frame was written)
            # the WAL may hold the commit: unknown.
            return False if failed.still_open else None
        if failed.xid is None:
            return None
        deadline = time.monotonic() + 2.0
        while True:
            try:
                connection = self._open(True)
            except StoreError:
                return None
            try:
                row = connection.raw.execute("SELECT txid_status(%s)", (failed.xid,)).fetchone()
            except Exception:
                return None
            finally:
                _close_quietly(connection)
            status = row[0] if row else None
            if status in ("committed", "aborted"):
                log.info("a write whose COMMIT failed was found %s", status)
                return bool(status == "committed")
            # 'in progress': the old backend has not finished; NULL: too old to know.
            if status is None or time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    # -- reads ------------------------------------------------------------------------

    def _reader(self) -> _Connection:
        """This thread's connection, marked busy; a replaced or stale one is dropped."""
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            with self._lock:
                current = (
                    connection in self._reader_connections
                    and connection.generation == self._generation
                )
                connection.busy = current
            if current:
                return connection
            self._local.connection = None
            self._forget_reader(connection)
        connection = self._open(True)
        connection.busy = True
        self._local.connection = connection
        with self._lock:
            self._reader_connections.append(connection)
        return connection

    def _forget_reader(self, connection: _Connection) -> None:
        with self._lock:
            if connection in self._reader_connections:
                self._reader_connections.remove(connection)
        _close_quietly(connection)

    def _drop_reader(self, connection: _Connection) -> None:
        self._local.connection = None
        self._forget_reader(connection)
        self._invalidate()

    def _read_sync(self, work: Callable[[Cursor], T]) -> T:
        for attempt in range(2):
            connection = self._reader()
            try:
                if connection.dialect == "sqlite":
                    result = work(connection.cursor())
                else:
                    with connection.raw.transaction():
                        result = work(connection.cursor())
            except Exception as exc:
                if not self._failed(exc):
                    connection.busy = False
                    raise
                self._drop_reader(connection)
                if attempt:
                    raise self._unavailable(exc) from exc
                continue
            connection.busy = False
            self.availability.succeeded()
            return result
        raise AssertionError("unreachable")

    async def read(self, work: Callable[[Cursor], T]) -> T:
        if self._closed:
            raise StoreError("database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_sync, work)

    async def read_row(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row ``sql`` selects (None without one), read as :meth:`read` reads."""
        return await self.read(lambda cursor: cursor.execute(sql, params).fetchone())

    def read_sync(self, work: Callable[[Cursor], T]) -> T:
        return self._read_sync(work)

    def snapshot_sync(self, work: Callable[[Cursor], T]) -> T:
        """Runs ``work`` on the caller's thread in one read-only transaction that sees a
        single consistent state of every table (a backup): SQLite's WAL read snapshot,
        PostgreSQL's REPEATABLE READ."""
        connection = self._open(True)
        try:
            if connection.dialect == "sqlite":
                connection.raw.execute("BEGIN")
                try:
                    return work(connection.cursor())
                finally:
                    connection.rollback()
            with connection.raw.transaction():
                connection.raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return work(connection.cursor())
        except Exception as exc:
            if self._failed(exc):
                raise self._unavailable(exc) from exc
            raise
        finally:
            _close_quietly(connection)

    async def ping(self) -> None:
        """A trivial read (health checks); StoreError when the database does not answer."""
        await self.read(_probe)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._writer.join(timeout=30)
        self._readers.shutdown(wait=True)
        with self._lock:
            for connection in self._reader_connections:
                _close_quietly(connection)


def _probe(cursor: Cursor) -> object:
    return cursor.execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchone()


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
        conninfo = _with_connect_timeout(url)
        return Database(
            "postgresql",
            lambda autocommit: _connect_postgresql(conninfo, autocommit=autocommit),
            readers=readers,
            description="postgresql",
            commit_delay=commit_delay,
        )
    raise ConfigurationError(
        f"unsupported database URL scheme {scheme!r}; use sqlite or postgresql"
    )
