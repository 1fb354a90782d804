"""Revocation, the watch stream and CRL publication (SPEC C6, C7, F1, F2) on in-memory
ports: what is recorded, announced and published, without Redis or SQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from cryptography import x509

from ca_service.domain.records import CrlKind
from ca_service.errors import CAError
from ca_service.pki.crl import Reason
from ca_service.services.revocation import WatchBatch
from tests.services.conftest import Services


async def test_revoke_records_announces_and_refuses_twice(services: Services) -> None:
    record = await services.issued()
    (revoked,) = await services.revoke(
        serial=record.serial,
        reason_name="keyCompromise",
        invalidity_date=services.clock.now() - timedelta(days=1),
    )
    assert (revoked.sequence, revoked.serial, revoked.reason) == (
        1,
        record.serial,
        Reason.KEY_COMPROMISE,
    )
    assert services.stores.feed.published == [1]
    assert services.stores.journal.actions()[-1] == "revoke"
    stored = await services.stores.certificates.by_serial(record.serial)
    assert stored is not None and stored.revoked_at is not None
    with pytest.raises(CAError) as caught:
        await services.revoke(serial=record.serial)
    assert caught.value.reason == "ALREADY_REVOKED"


@pytest.mark.parametrize(
    ("reason_name", "days", "expected"),
    [
        ("no_such_reason", 0, "INVALID_REASON"),
        ("removeFromCRL", 0, "INVALID_REASON"),
        ("superseded", 1, "INVALID_ARGUMENT"),  # an invalidity date in the future
    ],
)
async def test_bad_revocations_are_refused_before_the_store(
    services: Services, reason_name: str, days: int, expected: str
) -> None:
    record = await services.issued()
    with pytest.raises(CAError) as caught:
        await services.revoke(
            serial=record.serial,
            reason_name=reason_name,
            invalidity_date=services.clock.now() + timedelta(days=days) if days else None,
        )
    assert caught.value.reason == expected
    assert services.stores.revocations.revocations == []
    assert services.stores.feed.published == []


async def test_revoking_a_user_revokes_every_valid_certificate(services: Services) -> None:
    first = await services.issued()
    second = await services.issued()
    records = await services.revoke(user_id="taro0001")
    assert {r.serial for r in records} == {first.serial, second.serial}
    assert [r.sequence for r in records] == [1, 2]
    assert services.stores.feed.published == [2]
    with pytest.raises(CAError) as caught:
        await services.revoke(user_id="taro0001", actor="x")
    assert caught.value.reason == "CERTIFICATE_NOT_FOUND"


async def test_watch_catches_up_then_follows_live(services: Services) -> None:
    old = await services.issued("old00001")
    await services.revoke(serial=old.serial)
    live = await services.issued("live0001")
    batches: list[WatchBatch] = []
    first = asyncio.Event()

    async def follow() -> None:
        async for batch in services.revocation.watch(0):
            batches.append(batch)
            first.set()
            if any(r.serial == live.serial for r in batch.revocations):
                return

    watching = asyncio.create_task(follow())
    await asyncio.wait_for(first.wait(), 5)
    assert [r.serial for r in batches[0].revocations] == [old.serial]
    await services.accounts.unlock(acting_user_id="", user_id="live0001")
    await services.revoke(serial=live.serial)
    await asyncio.wait_for(watching, 5)
    assert batches[-1].latest_sequence == 2
    assert any("live0001" in b.changed_users for b in batches)
    with pytest.raises(CAError):
        await anext(services.revocation.watch(-1))


async def test_crls_publish_a_base_then_a_delta_with_the_revocation(services: Services) -> None:
    await services.publisher.refresh()
    base = services.publisher.current[CrlKind.BASE]
    empty_delta = services.publisher.current[CrlKind.DELTA]
    assert empty_delta.base_number == base.number
    record = await services.issued()
    await services.revoke(serial=record.serial)
    await services.publisher.refresh()
    delta = services.publisher.current[CrlKind.DELTA]
    assert delta.number > empty_delta.number and delta.base_number == base.number
    parsed = x509.load_der_x509_crl(delta.der)
    assert parsed.is_signature_valid(services.issuing.public_key())  # type: ignore[arg-type]
    assert [entry.serial_number for entry in parsed] == [record.serial]
    assert services.publisher.current[CrlKind.BASE] == base  # no new base for a revocation
    # After the interval, a new base holds it and the new delta is empty again.
    services.clock.advance(timedelta(minutes=30))
    await services.publisher.refresh()
    new_base = services.publisher.current[CrlKind.BASE]
    assert new_base.number > delta.number
    assert [e.serial_number for e in x509.load_der_x509_crl(new_base.der)] == [record.serial]
    assert list(x509.load_der_x509_crl(services.publisher.current[CrlKind.DELTA].der)) == []
