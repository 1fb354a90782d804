"""Revocations and CRL state on both databases: sequences, pre-encoded entries, expired
entries dropping off the CRL, the shared CRL-number counter."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from ca_service.adapters.sql.certificates import SqlCertificateStore
from ca_service.adapters.sql.crls import SqlCrlStore
from ca_service.adapters.sql.database import Database
from ca_service.adapters.sql.revocations import SqlRevocationStore
from ca_service.errors import FailedPrecondition
from ca_service.pki.crl import Reason
from tests.store.test_sql_store import NOW, _record
from tests.support import store_revoke


def test_revocations_get_increasing_sequences_and_drop_off_after_expiry(
    database: Database,
) -> None:
    certificates = SqlCertificateStore(database)
    revocations = SqlRevocationStore(database)
    crls = SqlCrlStore(database)
    records = [_record(user_id="store001", offset=i) for i in range(3)]

    async def scenario() -> None:
        for record in records:
            await certificates.record_issued(record)
        first = await store_revoke(revocations, NOW, serial=records[0].serial)
        rest = await store_revoke(
            revocations,
            NOW + timedelta(seconds=1),
            user_id="store001",
            reason=Reason.SUPERSEDED,
        )
        sequences = [r.sequence for r in first + rest]
        assert sequences == sorted(sequences) and len(set(sequences)) == 3
        with pytest.raises(FailedPrecondition):
            await store_revoke(
                revocations, NOW, serial=records[0].serial, reason=Reason.UNSPECIFIED
            )
        assert await revocations.latest_sequence() == sequences[-1]
        assert [r.sequence for r in await revocations.since(sequences[0])] == sequences[1:]
        assert (await revocations.of_serial(records[0].serial)).reason is Reason.KEY_COMPROMISE

        entries, through = await crls.entries(after_sequence=0, not_expired_at=NOW)
        assert len(entries) == 3 and through == sequences[-1]
        # The pre-encoded entry is a real revokedCertificates element.
        assert entries[0][0] == 0x30
        # RFC 5280 5.1.2.6: once the certificates have expired their entries drop off.
        after_expiry = records[0].not_after + timedelta(seconds=1)
        assert (await crls.entries(after_sequence=0, not_expired_at=after_expiry))[0] == []
        numbers = [await crls.next_number() for _ in range(3)]
        assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]

    asyncio.run(scenario())
