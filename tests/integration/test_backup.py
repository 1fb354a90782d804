"""`ca-service backup` of a running CA and `ca-service restore` into a fresh database and
data directory, on SQLite and on PostgreSQL.

The original CA issues, revokes and publishes CRLs before the backup and goes on after it;
the restored CA must hold every certificate, revocation and audit row of the backup (the
audit chain verifies), publish as its first CRL a full CRL over every backed-up revocation
whose number is above every number the original published (also after the backup), and
issue new serials. A damaged backup, a database or data directory in use are refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from ca_service.adapters.sql.audit import SqlAuditLog
from ca_service.adapters.sql.database import Database, open_database
from tests.integration.revocation_support import (
    crl_number,
    fetch,
    is_listed,
    issue,
    new_user,
    revoke,
    wait_for_crl,
)
from tests.support import CaProcess, ca_env, check_crl, free_port, init_ca, run, tool


@pytest.fixture(params=["sqlite", "postgresql", "sqlite-to-postgresql"])
def database_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty stores: the original CA's and the restored one's (one dialect, or a SQLite
    CA restored into PostgreSQL)."""
    dialects = str(request.param).split("-to-")
    original, restored = dialects if len(dialects) == 2 else dialects * 2
    urls = {"original": "", "restored": ""}
    schemas = []
    for role, dialect in (("original", original), ("restored", restored)):
        if dialect == "sqlite":
            urls[role] = f"sqlite:///{tmp_path / (role + '.db')}"
        else:
            schemas.append(f"t_{uuid.uuid4().hex[:12]}")
            urls[role] = _schema_url(str(request.getfixturevalue("postgres_server")), schemas[-1])
    yield urls["original"], urls["restored"]
    if schemas:
        import psycopg

        with psycopg.connect(str(request.getfixturevalue("postgres_server")), autocommit=True) as c:
            for schema in schemas:
                c.execute(f"DROP SCHEMA {schema} CASCADE")


def _schema_url(server: str, schema: str) -> str:
    """A new, empty schema on the test server (dropped by the fixture)."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in server else "?"
    return f"{server}{separator}options=-csearch_path%3D{schema}"


def _start(data_dir: Path, env: dict[str, str], log: Path) -> CaProcess:
    return CaProcess(data_dir, env, log).start()


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    database = open_database(url, readers=1)
    try:
        return database.read_sync(lambda cursor: cursor.execute(sql).fetchall())
    finally:
        database.close()


def _verify_chain(url: str) -> tuple[int, int | None]:
    async def verify(database: Database) -> tuple[int, int | None]:
        checked, broken, _ = await SqlAuditLog(database).verify()
        return checked, broken

    database = open_database(url, readers=1)
    try:
        return asyncio.run(verify(database))
    finally:
        database.close()


_CERTIFICATES = "SELECT serial, der, revoked_at FROM certificates ORDER BY serial"
_REVOCATIONS = (
    "SELECT sequence, serial, revoked_at, reason, crl_entry FROM revocations ORDER BY sequence"
)
_AUDIT = "SELECT id, at, actor, action, user_id, details, prev_hash, hash FROM audit_log"
_ACCOUNTS = (
    "SELECT user_id, organization_id, role, email, password_hash FROM users ORDER BY user_id"
)


def test_backup_of_a_running_ca_restores_into_a_fresh_one(
    database_urls: tuple[str, str], tmp_path: Path, redis_server: str
) -> None:
    original_url, restored_url = database_urls
    port = free_port()
    common = {
        "CA_HTTP_ADDRESS": f"127.0.0.1:{port}",
        "CA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CA_REDIS_URL": redis_server,
        "CA_REDIS_PREFIX": f"backup-{uuid.uuid4().hex[:8]}:",
    }
    original_dir = tmp_path / "original"
    original_env = ca_env(original_dir, CA_DATABASE_URL=original_url, **common)
    init_ca(original_dir, CA_DATABASE_URL=original_url, **common)
    server = _start(original_dir, original_env, tmp_path / "original.log")
    try:
        before = [issue(server, new_user(server, "bk")) for _ in range(3)]
        revoke(server, before[0].serial_number)
        delta_url = f"{server.http}/crl/issuing-delta.crl"
        wait_for_crl(delta_url, lambda crl: is_listed(crl, before[0]))

        backup = tmp_path / "backup"
        result = run([tool("ca-service"), "backup", "--to", str(backup)], original_env)
        assert f"into {backup}" in result.stdout
        manifest = json.loads((backup / "manifest.json").read_text())
        backed_up = {
            "certificates": _rows(original_url, _CERTIFICATES),
            "revocations": _rows(original_url, _REVOCATIONS),
            "audit": _rows(original_url, _AUDIT + " ORDER BY id"),
            "accounts": _rows(original_url, _ACCOUNTS),
        }
        assert manifest["tables"]["certificates"]["rows"] == len(backed_up["certificates"]) == 3
        assert manifest["tables"]["audit_log"]["rows"] == len(backed_up["audit"])
        assert not (backup / "data" / "ca.db").exists()
        assert (backup / "data" / "issuing" / "key.pem").stat().st_mode & 0o077 == 0

        # The original goes on: a revocation and CRLs the backup does not know.
        after = issue(server, new_user(server, "bk"))
        revoke(server, after.serial_number)
        last_delta, _ = wait_for_crl(delta_url, lambda crl: is_listed(crl, after))
        base_url = f"{server.http}/crl/issuing.crl"
        highest = max(
            crl_number(last_delta), crl_number(x509.load_der_x509_crl(fetch(base_url)[2]))
        )
        assert highest > manifest["crl_number"]
    finally:
        server.stop()

    # A damaged backup is refused before anything is written.
    restored_dir = tmp_path / "restored"
    restored_env = ca_env(restored_dir, CA_DATABASE_URL=restored_url, **common)
    key = backup / "data" / "issuing" / "key.pem"
    intact = key.read_bytes()
    key.write_bytes(intact[:-2] + b"x\n")
    refused = run([tool("ca-service"), "restore", "--from", str(backup)], restored_env, check=False)
    assert refused.returncode != 0
    assert "data/issuing/key.pem does not match its SHA-256" in refused.stderr
    assert not (restored_dir / "root").exists()
    key.write_bytes(intact)

    result = run([tool("ca-service"), "restore", "--from", str(backup)], restored_env)
    assert "audit chain verified" in result.stdout
    # Every backed-up row is back as it was.
    assert _rows(restored_url, _CERTIFICATES) == backed_up["certificates"]
    assert _rows(restored_url, _REVOCATIONS) == backed_up["revocations"]
    assert _rows(restored_url, _ACCOUNTS) == backed_up["accounts"]
    restored_audit = _rows(restored_url, _AUDIT + " ORDER BY id")
    assert restored_audit[: len(backed_up["audit"])] == backed_up["audit"]
    assert restored_audit[-1][3] == "restore"
    assert _verify_chain(restored_url) == (len(backed_up["audit"]) + 1, None)
    for relative, digest in manifest["files"].items():
        assert hashlib.sha256((restored_dir / relative).read_bytes()).hexdigest() == digest

    # Restoring again over it is refused: the database and the data directory are in use.
    again = run([tool("ca-service"), "restore", "--from", str(backup)], restored_env, check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    elsewhere = ca_env(tmp_path / "elsewhere", CA_DATABASE_URL=restored_url, **common)
    again = run([tool("ca-service"), "restore", "--from", str(backup)], elsewhere, check=False)
    assert again.returncode != 0 and "the database is not empty" in again.stderr
    assert not (tmp_path / "elsewhere" / "root").exists()

    restored = _start(restored_dir, restored_env, tmp_path / "restored.log")
    try:
        status, _, base_der = fetch(f"{restored.http}/crl/issuing.crl")
        assert status == 200
        first_base = x509.load_der_x509_crl(base_der)
        assert crl_number(first_base) > highest
        for certificate in before:
            assert is_listed(first_base, certificate) == (certificate is before[0])
        check_crl(base_der, restored_dir / "issuing" / "ca.pem", tmp_path / "first.crl")

        serials = {c.serial_number for c in [*before, after]}
        new = issue(restored, new_user(restored, "bk"))
        assert new.serial_number not in serials
        new.verify_directly_issued_by(
            x509.load_pem_x509_certificate((restored_dir / "issuing" / "ca.pem").read_bytes())
        )
        revoke(restored, new.serial_number)
        delta, _ = wait_for_crl(
            f"{restored.http}/crl/issuing-delta.crl", lambda crl: is_listed(crl, new)
        )
        assert crl_number(delta) > crl_number(first_base)
        verdict = run(
            [tool("ca-admin"), "--address", restored.address, "audit", "verify"], restored_env
        )
        assert "audit chain intact" in verdict.stdout
    finally:
        restored.stop()
