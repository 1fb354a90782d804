"""A base CRL is numbered, recorded and served before its DER is stored (services/crl.py):
the order of those steps, what other processes serve meanwhile, and what follows when the
DER never reaches the store. On the in-memory ports, whose ``store_base`` is held by a gate
as a slow write of a big CRL would be; tests/store/test_crl_publication.py and
tests/integration/test_crl_crash.py do the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from cryptography import x509

from ca_service.domain.crl_schedule import CrlSchedule, Due
from ca_service.domain.records import CrlKind, PublishedCrl
from ca_service.services.crl import CrlPublisher
from tests.services.conftest import Services

SCHEDULE = CrlSchedule()


def _serials(crl: PublishedCrl) -> set[int]:
    return {entry.serial_number for entry in x509.load_der_x509_crl(crl.der)}


def _standby(services: Services, leading: bool = False) -> CrlPublisher:
    """Another process's publisher over the same store (it holds no lease unless
    ``leading``)."""
    publisher = services.publisher
    return CrlPublisher(
        store=services.stores.crls,
        signer=publisher._signer,
        issuer_name=publisher._issuer_name,
        issuer_key_id=publisher._issuer_key_id,
        clock=services.clock,
        schedule=SCHEDULE,
        leading=lambda: leading,
    )


async def test_a_base_is_served_before_its_der_is_stored_and_others_adopt_it_after(
    services: Services,
) -> None:
    crls = services.stores.crls
    other = _standby(services)
    await services.publisher.refresh()
    await services.publisher.stored()
    await other.refresh()
    old_base = services.publisher.current[CrlKind.BASE]
    assert other.current[CrlKind.BASE] == old_base

    first = await services.issued("held0001")
    await services.revoke(serial=first.serial)
    services.clock.advance(SCHEDULE.interval)
    crls.store_gate.clear()  # the DER's write takes its time
    assert await services.publisher.refresh() is Due.NOTHING

    # Served at once, numbered above everything before, holding the revocation.
    base = services.publisher.current[CrlKind.BASE]
    assert base.number > old_base.number and _serials(base) == {first.serial}
    # Recorded (the number is taken, durably) without its DER.
    snapshot = await crls.snapshot()
    assert snapshot.base is not None and snapshot.base.number == base.number
    assert not snapshot.base.stored
    assert CrlKind.BASE not in await crls.published()
    # Its publisher does not take its own unstored base for an abandoned one.
    services.clock.advance(SCHEDULE.unstored_grace * 2)
    assert await services.publisher.refresh() is Due.NOTHING
    assert services.publisher.current[CrlKind.BASE] == base

    # A revocation meanwhile: a delta over the new base, served by its publisher.
    second = await services.issued("held0002")
    await services.revoke(serial=second.serial)
    await services.publisher.refresh()
    delta = services.publisher.current[CrlKind.DELTA]
    assert delta.base_number == base.number and _serials(delta) == {second.serial}

    # Another process keeps serving the previous pair (never a delta of a base it lacks).
    await other.refresh()
    assert other.current[CrlKind.BASE] == old_base
    assert other.current[CrlKind.DELTA].base_number == old_base.number

    crls.store_gate.set()
    await services.publisher.stored()
    assert (await crls.snapshot()).base == base.state
    assert (await crls.published())[CrlKind.BASE] == base
    await other.refresh()
    assert other.current == services.publisher.current


async def test_one_base_is_written_at_a_time(services: Services) -> None:
    crls = services.stores.crls
    await services.publisher.refresh()
    await services.publisher.stored()
    crls.store_gate.clear()
    services.clock.advance(SCHEDULE.interval)
    await services.publisher.refresh()
    first = services.publisher.current[CrlKind.BASE]
    services.clock.advance(SCHEDULE.interval)
    # The next base is built, but not recorded (the row the first one is written to) while
    # the first one's DER is being written.
    next_refresh = asyncio.ensure_future(services.publisher.refresh())
    await asyncio.sleep(0.2)
    assert not next_refresh.done()
    assert services.publisher.current[CrlKind.BASE] == first
    crls.store_gate.set()
    assert await next_refresh is Due.NOTHING
    await services.publisher.stored()
    second = services.publisher.current[CrlKind.BASE]
    assert second.number > first.number
    assert (await crls.published())[CrlKind.BASE] == second


async def test_a_base_whose_der_never_reached_the_store_is_replaced_by_a_higher_one(
    services: Services,
) -> None:
    """The publisher served a base and then died (here: its write failed) before storing
    it: the leader after it publishes a new base, numbered higher, holding everything."""
    crls = services.stores.crls
    await services.publisher.refresh()
    await services.publisher.stored()
    record = await services.issued("lost0001")
    await services.revoke(serial=record.serial)
    services.clock.advance(SCHEDULE.interval)
    crls.fail_store = True
    await services.publisher.refresh()
    await services.publisher.stored()
    served = services.publisher.current[CrlKind.BASE]
    assert not (await crls.snapshot()).base.stored  # type: ignore[union-attr]
    crls.fail_store = False

    successor = _standby(services, leading=True)
    # Within the grace the base may still be on its way to the store: no rival base.
    later = await services.issued("lost0002")
    await services.revoke(serial=later.serial)
    assert await successor.refresh() is Due.DELTA
    assert CrlKind.BASE not in successor.current
    services.clock.advance(SCHEDULE.unstored_grace)
    assert await successor.refresh() is Due.NOTHING
    await successor.stored()
    replacement = (await crls.published())[CrlKind.BASE]
    assert replacement == successor.current[CrlKind.BASE]
    assert replacement.number > served.number + 1  # above the served base and its delta
    assert _serials(replacement) == {record.serial, later.serial}
    # The first publisher (alive after all) follows: never back, never the same number twice.
    await services.publisher.refresh()
    assert services.publisher.current[CrlKind.BASE] == replacement


async def test_a_process_that_stops_stores_the_base_it_serves(services: Services) -> None:
    crls = services.stores.crls
    crls.store_gate.clear()
    await services.publisher.refresh()  # at start-up, before the loop
    stop = asyncio.Event()
    running = asyncio.ensure_future(services.publisher.run(stop, services.stores.feed))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.sleep(0.1)
    assert not running.done()  # waits for the DER's write
    crls.store_gate.set()
    await asyncio.wait_for(running, timeout=timedelta(seconds=5).total_seconds())
    assert (await crls.published())[CrlKind.BASE] == services.publisher.current[CrlKind.BASE]


async def test_a_stop_waits_for_the_store_a_bounded_time_and_leaves_the_base_unstored(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    crls = services.stores.crls
    publisher = CrlPublisher(
        store=crls,
        signer=services.publisher._signer,
        issuer_name=services.publisher._issuer_name,
        issuer_key_id=services.publisher._issuer_key_id,
        clock=services.clock,
        schedule=SCHEDULE,
        store_at_stop=0.2,
    )
    crls.store_gate.clear()  # the database does not answer
    stop = asyncio.Event()
    stop.set()  # asked to stop while the first base is being stored
    await publisher.refresh()
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(publisher.run(stop, services.stores.feed), 5)
    assert 0.2 <= asyncio.get_running_loop().time() - started < 2
    assert "stopping without storing base CRL number" in caplog.text
    await asyncio.sleep(0)  # the cancelled write ends
    assert publisher._storing is None
    # Recorded without its DER: for the other processes, a base whose publisher died.
    snapshot = await crls.snapshot()
    assert snapshot.base is not None and not snapshot.base.stored
    assert CrlKind.BASE not in await crls.published()
