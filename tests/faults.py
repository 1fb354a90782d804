"""Real faults for the outage tests: a TCP proxy that refuses, cuts or swallows an answer; a
redis-server that is killed and started again on the same port; a PostgreSQL database of the
test's own whose backends can be terminated and whose connections can be refused."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from tests.support import free_port, redis_executable, start_redis

__all__ = ["OwnDatabase", "RestartableRedis", "TcpProxy", "own_database"]


@dataclass(eq=False)
class _Pair:
    client: socket.socket
    server: socket.socket
    # Set once the request whose answer is to be swallowed went to the server.
    swallow: bool = False


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``, one thread per direction per connection.

    ``refuse()`` stops listening (new connections are refused by the kernel), ``cut()``
    closes every open connection, ``swallow_next_answer()`` lets the next request through
    to the server and closes that connection before any answer reaches the client (the
    client cannot tell whether the server acted on it).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.port = free_port()
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._armed = threading.Event()
        self.swallowed = threading.Event()
        self._stalled = False
        self._held: list[socket.socket] = []

    def start(self) -> TcpProxy:
        self.accept()
        return self

    def accept(self) -> None:
        """(Again) listens on the same port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def refuse(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def cut(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _close(pair)

    def stall(self) -> None:
        """New connections are accepted but never answered (a hung server)."""
        self._stalled = True

    def unstall(self) -> None:
        self._stalled = False
        held, self._held = self._held, []
        for sock in held:
            sock.close()

    def swallow_next_answer(self) -> None:
        self.swallowed.clear()
        self._armed.set()

    def close(self) -> None:
        self.refuse()
        self.cut()
        self.unstall()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._stalled:
                self._held.append(client)
                continue
            try:
                server = socket.create_connection(self._target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._upstream, args=(pair,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(pair,), daemon=True).start()

    def _upstream(self, pair: _Pair) -> None:
        while True:
            try:
                data = pair.client.recv(65536)
                if not data:
                    break
                if self._armed.is_set():
                    self._armed.clear()
                    pair.swallow = True
                    pair.server.sendall(data)
                    self.swallowed.set()
                    # The answer is dropped (_downstream); give the server time to act on
                    # the request before both ends close.
                    time.sleep(0.3)
                    break
                pair.server.sendall(data)
            except OSError:
                break
        self._drop(pair)

    def _downstream(self, pair: _Pair) -> None:
        while True:
            try:
                data = pair.server.recv(65536)
                if not data:
                    break
                if not pair.swallow:
                    pair.client.sendall(data)
            except OSError:
                break
        self._drop(pair)

    def _drop(self, pair: _Pair) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        _close(pair)


def _close(pair: _Pair) -> None:
    for sock in (pair.client, pair.server):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@dataclass
class RestartableRedis:
    """A throw-away redis-server (no persistence) that can be killed and started again on
    the same port."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RestartableRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [redis_executable(), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        argv += ["--logfile", str(self.directory / "redis.log")]
        self.process = start_redis(
            argv,
            lambda: redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1),
            time.monotonic() + timeout,
            f"redis-server on port {self.port}",
        )
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass(frozen=True)
class OwnDatabase:
    """A database of the test's own on the PostgreSQL server: its backends are the test's
    to terminate, and it can refuse connections without touching anybody else's."""

    admin_url: str
    name: str
    url: str

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(sql)  # type: ignore[arg-type]

    def terminate_backends(self) -> int:
        """Terminates every backend connected to this database; returns how many."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.name,),
            ).fetchall()
        return len(rows)

    def refuse_connections(self) -> None:
        """New connections fail (FATAL: not currently accepting connections) and the open
        ones are terminated."""
        self._admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        self.terminate_backends()

    def allow_connections(self) -> None:
        self._admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@contextlib.contextmanager
def own_database(server_url: str) -> Iterator[OwnDatabase]:
    name = f"outage_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(server_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    database = OwnDatabase(server_url, name, url)
    database._admin(f'CREATE DATABASE "{name}"')
    try:
        yield database
    finally:
        database.allow_connections()
        database._admin(f'DROP DATABASE "{name}" WITH (FORCE)')
