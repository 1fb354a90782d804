"""CRL publication by several ca-service processes sharing one database (SQLite and
PostgreSQL): each process has its own connections and publisher, as separate processes do.
Whatever the interleaving of revocations and publications, the CRLs stored (and served) keep
RFC 5280's promises: CRL numbers only grow, the delta always names the stored base, a
revocation never changes the base, and base + delta hold every revocation committed before
the publication began."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest
from cryptography import x509

from ca_service.adapters.sql import crls as crls_module
from ca_service.adapters.sql.certificates import SqlCertificateStore
from ca_service.adapters.sql.crls import SqlCrlStore
from ca_service.adapters.sql.database import Cursor, Database, open_database
from ca_service.adapters.sql.revocations import SqlRevocationStore
from ca_service.domain.crl_schedule import CrlSchedule, Due
from ca_service.domain.records import CrlKind, PublishedCrl
from ca_service.pki.crl import Reason
from ca_service.pki.hierarchy import create_pair
from ca_service.pki.keys import KeyAlgorithm
from ca_service.pki.signer import SoftwareSigner
from ca_service.services.crl import CrlPublisher
from tests.fakes import FakeClock
from tests.store.test_sql_store import NOW, _record
from tests.support import EXAMPLE_CA, migrated_database, record_and_revoke, store_revoke

SCHEDULE = CrlSchedule(
    validity=timedelta(hours=24), delta_validity=timedelta(hours=1), interval=timedelta(minutes=30)
)
DELTA_URL = "http://127.0.0.1/crl/issuing-delta.crl"
PAIR = create_pair(KeyAlgorithm.EC_P256, EXAMPLE_CA, NOW)
ISSUING = x509.load_der_x509_certificate(PAIR.issuing.certificate_der)


@dataclass
class Process:
    """What one ca-service process has: its own connections and its own publisher."""

    database: Database
    crls: SqlCrlStore
    revocations: SqlRevocationStore
    publisher: CrlPublisher
    served: list[PublishedCrl] = field(default_factory=list)


def _process(url: str, clock: FakeClock, leading: Callable[[], bool] = lambda: True) -> Process:
    database = open_database(url, readers=2)
    crls = SqlCrlStore(database)
    publisher = CrlPublisher(
        store=crls,
        signer=SoftwareSigner(PAIR.issuing_key),
        issuer_name=PAIR.issuing.subject,
        issuer_key_id=PAIR.issuing.key_id,
        clock=clock,
        schedule=SCHEDULE,
        freshest_crl_url=DELTA_URL,
        leading=leading,
    )
    return Process(database, crls, SqlRevocationStore(database), publisher)


@pytest.fixture
def processes(database_url: str) -> Iterator[tuple[FakeClock, list[Process]]]:
    with migrated_database(database_url):
        pass
    clock = FakeClock(NOW)
    running = [_process(database_url, clock) for _ in range(3)]
    yield clock, running
    for process in running:
        process.database.close()


def _serials(crl: PublishedCrl) -> set[int]:
    parsed = x509.load_der_x509_crl(crl.der)
    assert parsed.is_signature_valid(ISSUING.public_key())  # type: ignore[arg-type]
    return {entry.serial_number for entry in parsed}


def _numbers(der: bytes) -> tuple[int, int | None]:
    parsed = x509.load_der_x509_crl(der)
    number = parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    try:
        base = parsed.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
    except x509.ExtensionNotFound:
        base = None
    return number, base


def test_processes_publishing_together_keep_every_promise(
    processes: tuple[FakeClock, list[Process]],
) -> None:
    clock, running = processes
    randomness = random.Random(9)

    async def scenario() -> None:
        certificates = SqlCertificateStore(running[0].database)
        records = [_record(user_id=f"crl{i:05d}", offset=i) for i in range(60)]
        for record in records:
            await certificates.record_issued(record)
        pending = list(records)
        revoked: set[int] = set()
        history: dict[str, list[int]] = {"full": [], "delta": []}
        base_changes = 0

        async def revoke_some(process: Process) -> None:
            for _ in range(randomness.randint(0, 3)):
                if pending:
                    record = pending.pop()
                    await store_revoke(process.revocations, clock.now(), serial=record.serial)
                    revoked.add(record.serial)

        for round_ in range(25):
            if round_ % 8 == 7:
                clock.current += SCHEDULE.interval  # the base falls due
            # Revocations while the processes publish, in every interleaving asyncio finds.
            await asyncio.gather(
                revoke_some(running[round_ % 3]),
                *(process.publisher.refresh() for process in running),
            )
            committed = set(revoked)
            # A publication that began after these commits holds them all, whoever makes it.
            await asyncio.gather(*(process.publisher.refresh() for process in running))
            # A base's DER is stored after it is served; the others adopt it once it is.
            await asyncio.gather(*(process.publisher.stored() for process in running))
            await asyncio.gather(*(process.publisher.refresh() for process in running))
            stored = await running[0].crls.published()
            base, delta = stored["full"], stored["delta"]
            assert _numbers(base.der) == (base.number, None)
            assert _numbers(delta.der) == (delta.number, base.number)
            assert delta.base_number == base.number < delta.number
            assert _serials(base) | _serials(delta) == committed
            # The delta holds exactly what the base does not.
            assert not _serials(base) & _serials(delta)
            for kind, crl in stored.items():
                if not history[kind] or history[kind][-1] != crl.number:
                    assert not history[kind] or crl.number > history[kind][-1], (kind, history)
                    history[kind].append(crl.number)
            base_changes = len(history["full"])
            # Every process serves what is stored (it adopted what others published).
            for process in running:
                assert process.publisher.current["full"].number == base.number
                assert process.publisher.current["delta"].number == delta.number
        # One base at the start and one per interval: revocations made deltas only.
        assert base_changes == 1 + 25 // 8
        assert len(history["delta"]) > base_changes

    asyncio.run(scenario())


def test_only_the_leader_publishes_the_others_adopt(database_url: str) -> None:
    """With a lease (services/leases.py) only its holder publishes; a process that does not
    hold it publishes only the very first CRLs, and otherwise serves the leader's."""
    with migrated_database(database_url):
        pass
    clock = FakeClock(NOW)
    leader = {"name": "a"}
    running = {
        name: _process(database_url, clock, lambda name=name: leader["name"] == name)
        for name in ("a", "b")
    }

    async def scenario() -> None:
        records = [_record(user_id=f"lead{i:04d}", offset=i) for i in range(3)]
        certificates = SqlCertificateStore(running["a"].database)
        for record in records:
            await certificates.record_issued(record)
        # No CRL yet: the first process to start publishes, leader or not.
        assert await running["b"].publisher.refresh() is Due.NOTHING
        await running["b"].publisher.stored()
        first = await running["b"].crls.published()

        async def revoke(record_index: int) -> None:
            await store_revoke(
                running["b"].revocations, clock.now(), serial=records[record_index].serial
            )

        await revoke(0)
        # b does not lead: the delta is owed, b leaves it to the leader.
        assert await running["b"].publisher.refresh() is Due.DELTA
        assert await running["b"].crls.published() == first
        assert await running["a"].publisher.refresh() is Due.NOTHING
        assert await running["b"].publisher.refresh() is Due.NOTHING  # b adopts a's delta
        delta = running["b"].publisher.current[CrlKind.DELTA]
        assert delta.number > first[CrlKind.DELTA].number
        assert _serials(delta) == {records[0].serial}

        leader["name"] = "b"  # the lease moved: now a stands by
        await revoke(1)
        clock.advance(SCHEDULE.interval)  # and a base falls due
        assert await running["a"].publisher.refresh() is Due.BASE
        assert await running["b"].publisher.refresh() is Due.NOTHING
        await running["b"].publisher.stored()
        base = (await running["a"].crls.published())[CrlKind.BASE]
        assert base.number > delta.number
        assert _serials(base) == {records[0].serial, records[1].serial}

    try:
        asyncio.run(scenario())
    finally:
        for process in running.values():
            process.database.close()


def test_a_publication_based_on_what_is_no_longer_stored_is_refused(
    processes: tuple[FakeClock, list[Process]],
) -> None:
    _, running = processes
    store = running[0].crls

    async def scenario() -> None:
        await running[0].publisher.refresh()
        await running[0].publisher.stored()
        seen = await store.snapshot()
        assert seen.base is not None and seen.delta is not None
        stored = await store.published()
        newer = PublishedCrl(
            CrlKind.DELTA, await store.next_number(), seen.base.number, NOW, NOW, 0, b"x"
        )
        assert await store.publish_delta(newer, replacing=seen)
        # Another publisher that read the same state loses, even with a higher number.
        late = PublishedCrl(
            CrlKind.DELTA, await store.next_number(), seen.base.number, NOW, NOW, 0, b"y"
        )
        assert not await store.publish_delta(late, replacing=seen)
        first = await store.next_number(2)
        base = PublishedCrl(CrlKind.BASE, first, None, NOW, NOW, 0, b"b")
        delta = PublishedCrl(CrlKind.DELTA, first + 1, first, NOW, NOW, 0, b"d")
        assert not await store.publish_base(base, delta, replacing=seen)
        assert (await store.published())["delta"].der == b"x"
        assert (await store.published())["full"] == stored["full"]
        assert await store.publish_base(base, delta, replacing=await store.snapshot())
        # Recorded, numbered, its DER not stored yet: the snapshot says so, and only the
        # delta is there to adopt.
        recorded = await store.snapshot()
        assert recorded.base is not None and recorded.base.number == first
        assert not recorded.base.stored
        assert set(await store.published()) == {CrlKind.DELTA}
        assert await store.store_base(base)
        assert (await store.published())["full"].der == b"b"
        assert (await store.snapshot()).base == replace(recorded.base, stored=True)
        # A base replaced meanwhile is not overwritten by a late write of the older one.
        newer_first = await store.next_number(2)
        newer = PublishedCrl(CrlKind.BASE, newer_first, None, NOW, NOW, 0, b"n")
        newer_delta = PublishedCrl(CrlKind.DELTA, newer_first + 1, newer_first, NOW, NOW, 0, b"e")
        assert await store.publish_base(newer, newer_delta, replacing=await store.snapshot())
        assert not await store.store_base(base)
        assert "full" not in await store.published()

    asyncio.run(scenario())


def test_while_a_base_is_written_other_writes_go_on_on_postgresql(postgres_url: str) -> None:
    """The base's DER is written on a connection of its own (Database.write_aside): while
    that transaction is open, holding the base's row, a delta is published and a
    certificate revoked through the store's writer."""
    with migrated_database(postgres_url):
        pass
    clock = FakeClock(NOW)
    process = _process(postgres_url, clock)
    entered, release = threading.Event(), threading.Event()

    def slow_write(cursor: Cursor) -> bool:
        cursor.execute(
            "UPDATE crls SET der = der WHERE kind = ? AND number = ?", (CrlKind.BASE, base_number)
        )
        entered.set()
        release.wait(30)  # as 56 MB on a busy disk would take seconds
        return cursor.rowcount == 1

    async def scenario() -> None:
        nonlocal base_number
        await process.publisher.refresh()
        await process.publisher.stored()
        base_number = process.publisher.current[CrlKind.BASE].number
        record = _record(user_id="aside001")
        await SqlCertificateStore(process.database).record_issued(record)
        writing = asyncio.ensure_future(process.database.write_aside(slow_write))
        assert await asyncio.to_thread(entered.wait, 10)
        await asyncio.wait_for(
            store_revoke(process.revocations, clock.now(), serial=record.serial),
            timeout=10,
        )
        assert await asyncio.wait_for(process.publisher.refresh(), timeout=10) is Due.NOTHING
        delta = process.publisher.current[CrlKind.DELTA]
        assert delta.base_number == base_number and _serials(delta) == {record.serial}
        assert not writing.done()
        release.set()
        assert await writing

    base_number = 0
    try:
        asyncio.run(scenario())
    finally:
        release.set()
        process.database.close()


def test_revocations_commit_in_sequence_order_on_postgresql(postgres_url: str) -> None:
    """A revocation waits for the one before it to commit (an advisory lock), so a reader
    that sees sequence N sees every sequence below N too."""
    import psycopg

    with migrated_database(postgres_url):
        pass
    database = open_database(postgres_url, readers=1)
    record = _record(user_id="order001")
    holder = psycopg.connect(postgres_url, autocommit=False)
    try:

        async def scenario() -> None:
            await SqlCertificateStore(database).record_issued(record)
            # Another process's revocation, still open, holds the lock.
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (0x43415F5245564F4B,))
            started = time.monotonic()
            revocation = asyncio.ensure_future(
                store_revoke(
                    SqlRevocationStore(database),
                    NOW,
                    serial=record.serial,
                    reason=Reason.SUPERSEDED,
                )
            )
            threading.Timer(0.5, holder.commit).start()
            records = await asyncio.wait_for(revocation, 10)
            assert time.monotonic() - started >= 0.45
            assert records[0].serial == record.serial

        asyncio.run(scenario())
    finally:
        holder.close()
        database.close()


def test_entries_come_from_the_cache_and_the_store_and_drop_off_when_expired(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SqlCrlStore keeps the entries it read (a base CRL of a million entries then reads only
    what was revoked since): what it returns is what the store holds, cache or not."""
    monkeypatch.setattr(crls_module, "_PAGE", 2)  # pages of 2 rows: several per read
    crls, other = SqlCrlStore(database), SqlCrlStore(database)  # other: a cold cache
    certificates, revocations = SqlCertificateStore(database), SqlRevocationStore(database)

    async def revoke(days: int) -> int:
        record = replace(_record(), not_after=NOW + timedelta(days=days))
        return await record_and_revoke(certificates, revocations, record, NOW, Reason.SUPERSEDED)

    def serials(entries: list[bytes]) -> list[int]:
        return [int.from_bytes(entry[4 : 4 + entry[3]], "big") for entry in entries]

    async def scenario() -> None:
        short, long, third = await revoke(1), await revoke(30), await revoke(30)
        entries, through = await crls.entries(after_sequence=0, not_expired_at=NOW)
        assert serials(entries) == [short, long, third] and through == 3
        later = await revoke(30)
        # Cached up to 2, the rest from the store; a delta over sequence 2 alike.
        assert serials((await crls.entries(after_sequence=0, not_expired_at=NOW))[0]) == [
            short,
            long,
            third,
            later,
        ]
        assert serials((await crls.entries(after_sequence=3, not_expired_at=NOW))[0]) == [later]
        assert serials((await other.entries(after_sequence=3, not_expired_at=NOW))[0]) == [later]
        # Two days on, the first certificate has expired: its entry drops off for good.
        two_days = NOW + timedelta(days=2)
        entries, through = await crls.entries(after_sequence=0, not_expired_at=two_days)
        assert serials(entries) == [long, third, later] and through == 4
        assert serials((await other.entries(after_sequence=0, not_expired_at=two_days))[0]) == [
            long,
            third,
            later,
        ]
        # A clock set back: what had dropped off is due again, read afresh.
        entries, _ = await crls.entries(after_sequence=0, not_expired_at=NOW)
        assert serials(entries) == [short, long, third, later]

    asyncio.run(scenario())
