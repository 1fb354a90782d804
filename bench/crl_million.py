#!/usr/bin/env python3
"""The CRL of a running CA whose store holds a million revocations: from a revocation to
the new CRL being served over HTTP, and the process's memory (peak RSS), on SQLite and on
PostgreSQL.

Per backend: a throw-away CA and redis-server; the store is migrated and filled in bulk
(COPY on PostgreSQL, executemany in one transaction on SQLite) with ``--revocations``
certificates, every one revoked (realistic 16-octet serials, every reason, an invalidity
date on every third, the CRL entry pre-encoded as ca-service stores it; the certificate
rows carry a placeholder DER, which no CRL reads). Then ``ca-service serve`` starts on it:
before it listens it publishes the first base CRL of them all (timed: start-up).

Each run then measures, over HTTP with ``If-None-Match`` (304 until the CRL changes, so
the poll itself does not download the 40 MB):

- delta: RevokeCertificate of a fresh certificate → the delta CRL served holds it;
- base: the stored base CRL is made due (its thisUpdate moved back by the interval, as the
  schedule does every 30 minutes) and a certificate revoked → the base CRL served holds
  it, i.e. the whole CRL of ``--revocations`` + n entries was read from the store, built,
  signed, recorded and swapped in (its DER is stored afterwards, in the background: the
  run then waits until it is, as the next base comes only 30 minutes later in service);

with the CA's peak RSS (VmHWM) after each run: flat over the runs means the memory is
bounded by the CRL, not growing with the publications. The CA logs how the base's time
splits (read, build and sign, record) and how long the DER's write took after it. Medians
of ``--runs`` runs are printed last.

    .venv/bin/python bench/crl_million.py [--revocations 1000000] [--runs 5]
        [--backend sqlite,postgresql] [--postgres-url postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ca_service.adapters.sql.database import open_database  # noqa: E402
from ca_service.adapters.sql.migrations import migrate  # noqa: E402
from ca_service.api import pb  # noqa: E402
from ca_service.client import secure_channel, stub  # noqa: E402
from ca_service.pki import der  # noqa: E402
from ca_service.pki.certificates import new_serial  # noqa: E402
from ca_service.pki.crl import Reason, encode_entry  # noqa: E402
from tests.support import (  # noqa: E402
    CaProcess,
    ca_env,
    create_user,
    init_ca,
    make_csr,
    throwaway_redis,
)

TARGET_SECONDS = 2.0
REASONS = [r for r in Reason if r is not Reason.REMOVE_FROM_CRL]
CHUNK = 50_000
CSR = make_csr()
_BASE_LINE = re.compile(r"(published|stored) base CRL number \d+ .*")


def _rows(count: int, now: datetime) -> Iterator[list[tuple[object, ...]]]:
    """Chunks of (serial hex, revoked_at, reason, invalidity, not_after, entry DER)."""
    not_after = int((now + timedelta(days=365)).timestamp())
    rows: list[tuple[object, ...]] = []
    for index in range(count):
        serial = new_serial()
        revoked_at = now - timedelta(seconds=count - index)
        reason = REASONS[index % len(REASONS)]
        invalid = now - timedelta(days=1, seconds=index) if index % 3 == 0 else None
        entry = encode_entry(serial, revoked_at, reason, invalid)
        at = int(revoked_at.timestamp())
        rows.append(
            (
                format(serial, "x"),
                at,
                int(reason),
                None if invalid is None else int(invalid.timestamp()),
                not_after,
                entry,
            )
        )
        if len(rows) == CHUNK:
            yield rows
            rows = []
    if rows:
        yield rows


def _certificate_row(row: tuple[object, ...], index: int) -> tuple[object, ...]:
    serial, at, _, _, not_after, _ = row
    return (
        serial,
        f"{index:064x}",
        f"u{index:07d}",
        "Bench Co",
        f"CN=u{index:07d}",
        at,
        not_after,
        at,
        "csr",
        b"\x30\x00",  # a placeholder: no CRL reads the certificate itself
        at,
    )


def _revocation_row(row: tuple[object, ...], index: int) -> tuple[object, ...]:
    serial, at, reason, invalid, not_after, entry = row
    return (serial, f"u{index:07d}", at, reason, invalid, not_after, "bench", entry)


_CERTIFICATE_COLUMNS = (
    "serial, fingerprint_sha256, user_id, organization, subject, not_before, not_after,"
    " issued_at, key_source, der, revoked_at"
)
_REVOCATION_COLUMNS = (
    "serial, user_id, revoked_at, reason, invalidity_date, not_after, actor, crl_entry"
)


def fill(url: str, count: int) -> float:
    """Migrates the store and writes ``count`` revoked certificates; returns the seconds."""
    database = open_database(url, readers=1)
    try:
        migrate(database)
    finally:
        database.close()
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    if url.startswith("sqlite:"):
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            connection.execute("BEGIN")
            done = 0
            for chunk in _rows(count, now):
                connection.executemany(
                    f"INSERT INTO certificates ({_CERTIFICATE_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_certificate_row(row, done + i) for i, row in enumerate(chunk)],
                )
                connection.executemany(
                    f"INSERT INTO revocations ({_REVOCATION_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [_revocation_row(row, done + i) for i, row in enumerate(chunk)],
                )
                done += len(chunk)
            connection.execute("COMMIT")
        finally:
            connection.close()
    else:
        import psycopg

        with psycopg.connect(url) as connection, connection.cursor() as cursor:
            done = 0
            for chunk in _rows(count, now):
                with cursor.copy(f"COPY certificates ({_CERTIFICATE_COLUMNS}) FROM STDIN") as copy:
                    for i, row in enumerate(chunk):
                        copy.write_row(_certificate_row(row, done + i))
                with cursor.copy(f"COPY revocations ({_REVOCATION_COLUMNS}) FROM STDIN") as copy:
                    for i, row in enumerate(chunk):
                        copy.write_row(_revocation_row(row, done + i))
                done += len(chunk)
            connection.execute("ANALYZE certificates")
            connection.execute("ANALYZE revocations")
    return time.perf_counter() - started


@contextmanager
def postgres_schema(server_url: str) -> Iterator[str]:
    """A fresh schema on ``server_url``, dropped afterwards (as tests/conftest.py does)."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in server_url else "?"
    try:
        yield f"{server_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def memory_kib(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
        for key in ("VmHWM", "VmRSS")
    }


class Poller:
    """GETs one CRL URL with If-None-Match until a new CRL holding ``needle`` is served."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.etag: str | None = None
        self.body = b""
        self.fetch()

    def fetch(self) -> bool:
        request = urllib.request.Request(self.url)
        if self.etag:
            request.add_header("If-None-Match", self.etag)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                self.etag = answer.headers["ETag"]
                self.body = answer.read()
                return True
        except urllib.error.HTTPError as error:
            if error.code == 304:
                return False
            raise

    def until_holding(self, needle: bytes, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.fetch() and needle in self.body:
                return time.monotonic()
            time.sleep(0.02)
        raise AssertionError(f"{self.url} did not serve the revocation in {timeout} s")


def _serial_needle(serial: int) -> bytes:
    """The DER INTEGER of the serial, as the CRL entry carries it."""
    return der.integer(serial)


def _make_base_due(url: str) -> None:
    """Moves the stored base CRL's thisUpdate back by an hour: the schedule (30 minutes)
    then wants a new base at the next look."""
    database = open_database(url, readers=1)
    try:
        database.write_sync(
            lambda cursor: cursor.execute(
                "UPDATE crls SET this_update = this_update - 3600 WHERE kind = 'full'"
                " RETURNING number"
            ).fetchall()
        )
    finally:
        database.close()


def _wait_until_stored(url: str, timeout: float = 120) -> float:
    """Waits until the recorded base CRL's DER is in the store; returns how long it took."""
    database = open_database(url, readers=1)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            row = database.read_sync(
                lambda cursor: cursor.execute(
                    "SELECT length(der) FROM crls WHERE kind = 'full'"
                ).fetchone()
            )
            if row is not None and int(row[0]) > 0:
                return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError("the base CRL's DER was not stored")
    finally:
        database.close()


def measure(backend: str, url: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    data_dir = workdir / f"ca-{backend}"
    init_ca(data_dir, CA_DATABASE_URL=url)
    filled = fill(url, args.revocations)
    print(f"{backend}: {args.revocations:,} revocations written in {filled:.1f} s", flush=True)
    log = workdir / f"ca-{backend}.log"
    results: dict[str, list[float]] = {"delta": [], "base": [], "hwm_mib": []}
    with throwaway_redis(workdir / f"redis-{backend}") as (redis_url, _):
        env = ca_env(
            data_dir,
            CA_DATABASE_URL=url,
            CA_REDIS_URL=redis_url,
            CA_REDIS_PREFIX="bench:",
            CA_MAIL_WORKER="0",
        )
        started = time.monotonic()
        server = CaProcess(data_dir, env, log).start(timeout=600)
        startup = time.monotonic() - started
        try:
            assert server.process is not None
            pid = server.process.pid
            memory = memory_kib(pid)
            print(
                f"{backend}: started (first base CRL published) in {startup:.1f} s;"
                f" peak RSS {memory['VmHWM'] / 1024:.0f} MiB, RSS {memory['VmRSS'] / 1024:.0f} MiB",
                flush=True,
            )
            create_user(server.address, server.operator(), "bench001", "Bench Co")
            api = stub(secure_channel(server.address, server.operator()))
            full = Poller(f"{server.http}/crl/issuing.crl")
            delta = Poller(f"{server.http}/crl/issuing-delta.crl")

            def revoke() -> tuple[int, float]:
                answer = api.SignCsr(
                    pb.SignCsrRequest(csr=CSR, user_id="bench001", override_renewal_window=True)
                )
                serial = int(answer.certificate.serial_number, 16)
                at = time.monotonic()
                api.RevokeCertificate(
                    pb.RevokeCertificateRequest(serial_number=format(serial, "x"))
                )
                return serial, at

            for run in range(args.runs):
                serial, at = revoke()
                delta_seconds = delta.until_holding(_serial_needle(serial)) - at
                _make_base_due(url)
                serial, at = revoke()
                base_seconds = full.until_holding(_serial_needle(serial)) - at
                stored_after = _wait_until_stored(url)
                memory = memory_kib(pid)
                results["delta"].append(delta_seconds)
                results["base"].append(base_seconds)
                results["hwm_mib"].append(memory["VmHWM"] / 1024)
                print(
                    f"{backend} run {run + 1}: revocation → delta CRL served {delta_seconds:.2f} s;"
                    f" → base CRL ({len(full.body) / 1e6:.0f} MB) served {base_seconds:.2f} s"
                    f" (its DER stored {stored_after:.2f} s later);"
                    f" peak RSS {memory['VmHWM'] / 1024:.0f} MiB,"
                    f" RSS {memory['VmRSS'] / 1024:.0f} MiB;"
                    f" load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        finally:
            server.stop()
    for line in log.read_text().splitlines():
        if _BASE_LINE.search(line):
            print(f"  ca-service: {_BASE_LINE.search(line).group(0)}")  # type: ignore[union-attr]
    return {key: statistics.median(values) for key, values in results.items()} | {
        "startup": startup,
        "fill": filled,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--revocations", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a server where a throw-away schema is made",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"CRL of a running CA with {args.revocations:,} revocations; {os.cpu_count()} CPUs,"
        f" load average {load[0]:.1f} at the start"
    )
    summary = {}
    with tempfile.TemporaryDirectory() as workdir:
        for backend in args.backend.split(","):
            if backend == "sqlite":
                url = f"sqlite:///{Path(workdir) / 'ca.db'}"
                summary[backend] = measure(backend, url, args, Path(workdir))
            else:
                with postgres_schema(args.postgres_url) as url:
                    summary[backend] = measure(backend, url, args, Path(workdir))
    print(f"medians of {args.runs} runs (target: under {TARGET_SECONDS:.0f} s):")
    for backend, result in summary.items():
        print(
            f"  {backend}: revocation → delta CRL served {result['delta']:.2f} s,"
            f" → base CRL served {result['base']:.2f} s; peak RSS {result['hwm_mib']:.0f} MiB;"
            f" start-up with the first base {result['startup']:.1f} s;"
            f" bulk fill {result['fill']:.0f} s"
        )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
