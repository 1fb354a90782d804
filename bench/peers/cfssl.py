"""CloudFlare cfssl's signing throughput on this machine, for comparison in the same run.

Install the peer with ``apt-get install -y golang-cfssl`` (Debian's 1.2.0+git20160825 build,
binaries in /usr/bin). Without the ``cfssl`` binary, :func:`measure_cfssl` returns None.

The run makes a throw-away ECDSA P-256 CA with cfssl itself, optionally an SQLite certdb with
cfssl 1.2's certsql schema (the package ships no migrations, so the schema is reproduced
below), starts ``cfssl serve`` on a free loopback port and drives ``POST /api/v1/cfssl/sign``
from keep-alive HTTP/1.1 connections with one reused P-256 CSR.

cfssl opens the database through mattn/go-sqlite3 with the DSN as given, so it keeps SQLite's
defaults: rollback journal (journal_mode=DELETE, not WAL) and synchronous=FULL, one
transaction per issued certificate.

    .venv/bin/python bench/peers/cfssl.py
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

# cfssl 1.2 certdb/sqlite/migrations/001_CreateCertificates.sql (certsql's column set).
CERTDB_SCHEMA = """
CREATE TABLE certificates (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  ca_label                 blob,
  status                   blob NOT NULL,
  reason                   int,
  expiry                   timestamp,
  revoked_at               timestamp,
  pem                      blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);

CREATE TABLE ocsp_responses (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  body                     blob NOT NULL,
  expiry                   timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier)
    REFERENCES certificates(serial_number, authority_key_identifier)
);
"""

SIGNING_CONFIG = {
    "signing": {
        "default": {"usages": ["digital signature", "client auth"], "expiry": "8784h"},
    },
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def find_cfssl() -> str | None:
    return shutil.which("cfssl") or next(
        (p for p in ("/usr/bin/cfssl", "/usr/local/bin/cfssl") if os.access(p, os.X_OK)), None
    )


def _make_ca(cfssl: str, d: Path) -> None:
    csr = d / "ca-csr.json"
    csr.write_text(json.dumps({"CN": "cfssl bench CA", "key": {"algo": "ecdsa", "size": 256}}))
    out = subprocess.run(
        [cfssl, "gencert", "-initca", str(csr)], capture_output=True, check=True, cwd=d
    ).stdout
    cfssljson = shutil.which("cfssljson")
    if cfssljson:
        subprocess.run(
            [cfssljson, "-bare", "ca"], input=out, capture_output=True, check=True, cwd=d
        )
    else:
        doc = json.loads(out)
        (d / "ca.pem").write_text(doc["cert"])
        (d / "ca-key.pem").write_text(doc["key"])
        os.chmod(d / "ca-key.pem", 0o600)


def _csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.example")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bench.example")]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(Encoding.PEM).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cfssl serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"cfssl serve did not listen within {timeout} s")


class _Load:
    def __init__(self) -> None:
        self.measuring = False
        self.stop = False
        self.latencies: list[float] = []  # seconds, 200 responses completed while measuring
        self.requests = 0  # all responses completed while measuring
        self.checked = False


async def _client(port: int, request: bytes, load: _Load) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not load.stop:
            start = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            if not status_line:
                raise RuntimeError("cfssl closed the connection")
            status = int(status_line.split()[1])
            length = -1
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length < 0:
                raise RuntimeError("cfssl response without Content-Length")
            body = await reader.readexactly(length)
            elapsed = time.perf_counter() - start
            if status == 200 and not load.checked:
                if json.loads(body).get("success") is not True:
                    raise RuntimeError(f"cfssl sign failed: {body[:500]!r}")
                load.checked = True
            if load.measuring:
                load.requests += 1
                if status == 200:
                    load.latencies.append(elapsed)
    finally:
        writer.close()


async def _drive(
    port: int, pid: int, clients: int, warmup: float, seconds: float
) -> dict[str, float]:
    body = json.dumps({"certificate_request": _csr_pem()}).encode()
    request = (
        f"POST /api/v1/cfssl/sign HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    load = _Load()
    tasks = [asyncio.create_task(_client(port, request, load)) for _ in range(clients)]
    try:
        await asyncio.sleep(warmup)
        server0, self0, t0 = _cpu_seconds(pid), _self_cpu(), time.perf_counter()
        load.measuring = True
        await asyncio.sleep(seconds)
        load.measuring = False
        server1, self1, t1 = _cpu_seconds(pid), _self_cpu(), time.perf_counter()
        load.stop = True
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    ok = len(load.latencies)
    if not ok:
        raise RuntimeError("cfssl signed nothing in the measured window")
    lat = sorted(load.latencies)
    return {
        "rate": ok / (t1 - t0),
        "p50_ms": lat[(ok - 1) // 2] * 1e3,
        "p99_ms": lat[min(ok - 1, int(ok * 0.99))] * 1e3,
        "cpu_us_per_cert": (server1 - server0) / ok * 1e6,
        "client_cpu_us_per_request": (self1 - self0) / max(load.requests, 1) * 1e6,
        "errors": float(load.requests - ok),
    }


def measure_cfssl(
    seconds: float = 10.0,
    clients: int = 64,
    warmup: float = 2.0,
    record_in_sqlite: bool = True,
    workdir: Path | None = None,
) -> dict[str, float] | None:
    """cfssl serve's sign rate, latency and CPU per cert; None when cfssl is not installed."""
    cfssl = find_cfssl()
    if cfssl is None:
        return None
    with tempfile.TemporaryDirectory(prefix="cfssl-bench-", dir=workdir) as tmp:
        d = Path(tmp)
        _make_ca(cfssl, d)
        (d / "config.json").write_text(json.dumps(SIGNING_CONFIG))
        port = _free_port()
        args = [cfssl, "serve", "-address", "127.0.0.1", "-port", str(port)]
        args += ["-ca", "ca.pem", "-ca-key", "ca-key.pem", "-config", "config.json"]
        db = d / "certdb.sqlite"
        if record_in_sqlite:
            with sqlite3.connect(db) as conn:
                conn.executescript(CERTDB_SCHEMA)
            conn.close()
            (d / "db.json").write_text(json.dumps({"driver": "sqlite3", "data_source": str(db)}))
            args += ["-db-config", "db.json"]
        log = d / "serve.log"
        with log.open("wb") as log_file:
            proc = subprocess.Popen(args, cwd=d, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            _wait_listening(proc, port, log, timeout=15.0)
            result = asyncio.run(_drive(port, proc.pid, clients, warmup, seconds))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if record_in_sqlite:
            with sqlite3.connect(db) as conn:
                result["rows"] = float(
                    conn.execute("SELECT count(*) FROM certificates").fetchone()[0]
                )
            conn.close()
        return result


if __name__ == "__main__":
    for recording in (True, False):
        figures = measure_cfssl(seconds=5.0, record_in_sqlite=recording)
        label = "SQLite" if recording else "nothing"
        if figures is None:
            print("cfssl is not installed (apt-get install -y golang-cfssl)")
            break
        print(
            f"cfssl serve, recording {label}: "
            + ", ".join(f"{k}={v:,.1f}" for k, v in figures.items())
        )
