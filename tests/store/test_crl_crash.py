"""A publisher killed (SIGKILL) after serving a base CRL and before its DER reached the store
(services/crl.py serves a base first and stores it afterwards): on SQLite and PostgreSQL,
the number it served stays taken, and the next publisher publishes a complete base with a
higher number, so no CRL number ever stands for two different CRLs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from ca_service.adapters.sql.certificates import SqlCertificateStore
from ca_service.adapters.sql.crls import SqlCrlStore
from ca_service.adapters.sql.revocations import SqlRevocationStore
from ca_service.domain.crl_schedule import CrlSchedule
from ca_service.domain.records import CertificateRecord, CrlKind
from ca_service.pki.hierarchy import create_pair
from ca_service.pki.keys import KeyAlgorithm
from ca_service.pki.signer import SoftwareSigner
from ca_service.services.crl import CrlPublisher
from tests.fakes import FakeClock
from tests.store.test_sql_store import _record
from tests.support import EXAMPLE_CA, migrated_database, record_and_revoke

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE = CrlSchedule()
PAIR = create_pair(KeyAlgorithm.EC_P256, EXAMPLE_CA, datetime.now(UTC) - timedelta(days=1))
ISSUING = x509.load_der_x509_certificate(PAIR.issuing.certificate_der)


def _valid_record(user_id: str) -> CertificateRecord:
    return replace(_record(user_id=user_id), not_after=datetime.now(UTC) + timedelta(days=365))


def _serials(der: bytes) -> set[int]:
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(ISSUING.public_key())  # type: ignore[arg-type]
    return {entry.serial_number for entry in crl}


def _number(der: bytes) -> int:
    crl = x509.load_der_x509_crl(der)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _publisher(store: SqlCrlStore, clock: FakeClock) -> CrlPublisher:
    return CrlPublisher(
        store=store,
        signer=SoftwareSigner(PAIR.issuing_key),
        issuer_name=PAIR.issuing.subject,
        issuer_key_id=PAIR.issuing.key_id,
        clock=clock,
        schedule=SCHEDULE,
    )


def test_the_base_after_a_publisher_killed_before_storing_is_numbered_higher_and_complete(
    database_url: str, tmp_path: Path
) -> None:
    setup = tmp_path / "setup.json"
    setup.write_text(
        json.dumps(
            {
                "key_pem": PAIR.issuing_key.private_bytes(
                    Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
                ).decode(),
                "issuer_name": PAIR.issuing.subject.hex(),
                "issuer_key_id": PAIR.issuing.key_id.hex(),
            }
        )
    )
    served_path = tmp_path / "served.der"

    with migrated_database(database_url) as database:
        certificates = SqlCertificateStore(database)
        revocations = SqlRevocationStore(database)
        crls = SqlCrlStore(database)
        clock = FakeClock(datetime.now(UTC).replace(microsecond=0))

        async def revoke(user_id: str) -> int:
            return await record_and_revoke(
                certificates, revocations, _valid_record(user_id), clock.now()
            )

        async def before() -> tuple[int, set[int]]:
            first = _publisher(crls, clock)
            await first.refresh()
            await first.stored()
            revoked = {await revoke(f"crash{i:03d}") for i in range(3)}
            # The base falls due: the stored one is an hour old.
            await database.write(
                lambda cursor: cursor.execute(
                    "UPDATE crls SET this_update = this_update - 3600 WHERE kind = 'full'"
                )
            )
            return first.current[CrlKind.BASE].number, revoked

        old_number, revoked = asyncio.run(before())

        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.store.crl_publisher_child",
                database_url,
                str(setup),
                str(served_path),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
        )
        try:
            assert child.stdout is not None
            served_number = int(child.stdout.readline())  # it serves the new base now
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        served = served_path.read_bytes()
        assert _number(served) == served_number > old_number
        assert _serials(served) == revoked

        async def after() -> None:
            # What the killed publisher left: its numbers taken, the base without its DER.
            snapshot = await crls.snapshot()
            assert snapshot.base is not None and snapshot.base.number == served_number
            assert not snapshot.base.stored
            assert CrlKind.BASE not in await crls.published()
            # A revocation after the crash, then the next leader (the lease moved: a few
            # seconds, past the grace).
            revoked.add(await revoke("crash999"))
            clock.current = x509.load_der_x509_crl(served).last_update_utc + (
                SCHEDULE.unstored_grace
            )
            successor = _publisher(SqlCrlStore(database), clock)
            await successor.refresh()
            await successor.stored()
            stored = await crls.published()
            base, delta = stored[CrlKind.BASE], stored[CrlKind.DELTA]
            assert base == successor.current[CrlKind.BASE]
            # Above the served base and its first delta: no number stands for two CRLs.
            assert _number(base.der) == base.number > served_number + 1
            assert delta.base_number == base.number < delta.number
            assert _serials(base.der) == revoked
            assert _serials(delta.der) == set()

        asyncio.run(after())
