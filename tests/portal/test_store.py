"""The portal's SQL store on SQLite and PostgreSQL: a submission and its files in one
transaction, once per confirm page (idempotency key), unique receipt numbers, sessions that
end."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ca_service.adapters.sql.database import open_database
from gateway.portal.card import Card
from gateway.portal.cli import orphans
from gateway.portal.errors import StaleConfirmation, UploadTooLarge
from gateway.portal.procedure import MAX_TOTAL_BYTES, Invalid, parse_receipt_number
from gateway.portal.store import PortalSession, PortalStore

NOW = datetime(2026, 12, 3, 9, 0, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)
CARD = Card("ab" * 32, "共済 太郎", "東京都港区虎ノ門3-5-1", "1990-04-01", "1")


@pytest.fixture
def store(database_url: str) -> Iterator[PortalStore]:
    store = PortalStore(open_database(database_url))
    store.migrate()
    store.migrate()  # applied once
    yield store
    store.close()


def _admit_all(sizes: list[int]) -> None:
    return None


async def _draft(store: PortalStore, files: int = 2) -> tuple[str, PortalSession]:
    key, session = await store.create_session("taro@test.example.jp", NOW, HOUR)
    assert await store.bind_card(session, CARD.fingerprint)
    await store.confirm_identity(session)
    await store.save_draft(session, "123456789", "S0101-20230101102030-12345")
    await store.stage_files(
        session,
        [(f"{i}.png", "image/png", 100 + i, f"{i:064x}", f"/files/{i}") for i in range(files)],
        NOW,
        _admit_all,
    )
    return key, session


async def test_a_session_binds_one_card_and_ends(store: PortalStore) -> None:
    key, session = await store.create_session("taro@test.example.jp", NOW, HOUR)
    found = await store.session(key, NOW)
    assert found is not None and found.address == "taro@test.example.jp"
    assert found.card_fingerprint is None and not found.identity_confirmed
    assert await store.bind_card(session, CARD.fingerprint)
    assert await store.bind_card(session, CARD.fingerprint)  # the same card again
    assert not await store.bind_card(session, "cd" * 32)
    assert await store.session("another" + key, NOW) is None
    assert await store.session(key, NOW + HOUR) is None  # ended
    await store.stage_files(session, [("a", "b", 1, "0" * 64, "/f/a")], NOW, _admit_all)
    assert await store.expired_sessions(NOW + HOUR) == ["/f/a"]
    assert await store.session(key, NOW) is None  # swept


async def test_a_submission_takes_the_draft_once(store: PortalStore) -> None:
    _, session = await _draft(store)
    token = await store.freeze_draft(session)
    receipt, new = await store.submit(session, token, CARD, NOW)
    assert new
    assert parse_receipt_number(receipt, NOW + HOUR).received_at == NOW.replace(microsecond=0)
    assert receipt.startswith("S0101-20261203180005-")
    again, new_again = await store.submit(session, token, CARD, NOW + timedelta(seconds=3))
    assert (again, new_again) == (receipt, False)
    submission = await store.submission(receipt)
    assert submission is not None
    assert submission.member_number == "123456789"
    assert submission.original_receipt == "S0101-20230101102030-12345"
    assert [f.name for f in submission.files] == ["0.png", "1.png"]
    assert [f.sha256 for f in submission.files] == [f"{i:064x}" for i in range(2)]
    assert await store.staged_files(session) == []
    assert await store.unmailed() == [(receipt, "taro@test.example.jp", NOW.replace(microsecond=0))]
    await store.mark_mailed(receipt, NOW)
    assert await store.unmailed() == []


async def test_concurrent_submits_of_one_page_make_one_submission(store: PortalStore) -> None:
    _, session = await _draft(store)
    token = await store.freeze_draft(session)
    answers = await asyncio.gather(*(store.submit(session, token, CARD, NOW) for _ in range(8)))
    receipts = {receipt for receipt, _ in answers}
    assert len(receipts) == 1
    assert sum(new for _, new in answers) == 1


async def test_a_changed_draft_voids_the_confirm_page(store: PortalStore) -> None:
    _, session = await _draft(store)
    token = await store.freeze_draft(session)
    await store.save_draft(session, "", "S0101-20230101102030-12345")
    with pytest.raises(StaleConfirmation):
        await store.submit(session, token, CARD, NOW)
    token = await store.freeze_draft(session)
    staged = await store.staged_files(session)
    assert await store.remove_file(session, staged[0].id) == staged[0].path
    assert await store.remove_file(session, staged[0].id) is None
    with pytest.raises(StaleConfirmation):
        await store.submit(session, token, CARD, NOW)
    with pytest.raises(StaleConfirmation):
        await store.submit(session, "forged", CARD, NOW)
    assert await store.unmailed() == []


async def test_a_draft_without_files_is_not_submitted(store: PortalStore) -> None:
    _, session = await _draft(store, files=0)
    token = await store.freeze_draft(session)
    with pytest.raises(Invalid):
        await store.submit(session, token, CARD, NOW)
    assert await store.unmailed() == []


async def test_files_are_staged_all_or_none(store: PortalStore) -> None:
    _, session = await _draft(store, files=1)

    def admit(sizes: list[int]) -> None:
        if sum(sizes) > MAX_TOTAL_BYTES:
            raise UploadTooLarge("over")

    with pytest.raises(UploadTooLarge):
        await store.stage_files(
            session,
            [("x", "y", 10, "0" * 64, "/x"), ("big", "y", MAX_TOTAL_BYTES, "0" * 64, "/big")],
            NOW,
            admit,
        )
    assert [f.name for f in await store.staged_files(session)] == ["0.png"]


async def test_receipt_numbers_stay_unique_within_a_second(store: PortalStore) -> None:
    receipts = []
    for _ in range(30):
        _, session = await _draft(store, files=1)
        token = await store.freeze_draft(session)
        receipts.append((await store.submit(session, token, CARD, NOW))[0])
    assert len(set(receipts)) == 30
    assert all(r.startswith("S0101-20261203180005-") for r in receipts)


async def test_registration_links_to_one_address_are_limited_per_window(
    store: PortalStore,
) -> None:
    address = "flood@test.example.jp"
    admitted = [
        await store.admit_registration(address, NOW + timedelta(minutes=i), HOUR, 3)
        for i in range(5)
    ]
    assert admitted == [True, True, True, False, False]
    assert await store.admit_registration("other@test.example.jp", NOW, HOUR, 3)
    # An hour after the first, one more.
    assert await store.admit_registration(address, NOW + HOUR, HOUR, 3)
    assert not await store.admit_registration(address, NOW + HOUR, HOUR, 3)


async def test_the_files_rows_name_are_known(store: PortalStore) -> None:
    _, session = await _draft(store, files=2)
    assert await store.referenced_paths() == {"/files/0", "/files/1"}
    receipt, _ = await store.submit(session, await store.freeze_draft(session), CARD, NOW)
    assert await store.referenced_paths() == {"/files/0", "/files/1"}
    assert receipt


def test_only_old_unrecorded_files_are_orphans(tmp_path: Path) -> None:
    recorded, crashed, uploading = (tmp_path / name for name in ("a", "b", "c"))
    for path in (recorded, crashed, uploading):
        path.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(recorded, (old, old))
    os.utime(crashed, (old, old))
    assert orphans(tmp_path, {str(recorded)}, time.time() - 3600) == [crashed]
