"""When a user's password last changed (``users.password_changed_at_ms``, migration 8), in
both real databases: stamped by the user's own change, a reset of a general user, the
operator's reset of a master user and its re-registration; not by a rehash; strictly
increasing per user however close the changes; NULL for accounts from before."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from ca_service.adapters.sql.accounts import SqlAccountStore
from ca_service.adapters.sql.database import Database, open_database
from ca_service.adapters.sql.migrations import MIGRATIONS, migrate
from ca_service.domain.accounts import (
    Account,
    AccountRole,
    AuditAction,
    AuditEntry,
    InitialPassword,
    Organization,
)
from tests.support import insert_early_account

NOW = datetime(2026, 11, 21, 1, 2, 3, 456789, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def _audit(action: AuditAction, user_id: str | None = None, at: datetime = NOW) -> AuditEntry:
    return AuditEntry(at, "operator", action, user_id, {})


async def _changed_at(store: SqlAccountStore, user_id: str) -> datetime | None:
    account = await store.account(user_id)
    assert account is not None
    return account.password_changed_at


def test_changes_and_resets_stamp_a_strictly_increasing_instant(database: Database) -> None:
    store = SqlAccountStore(database)

    async def scenario() -> None:
        await store.create_organization(
            Organization("ORG-P", "組織 P", NOW),
            InitialPassword("ORG-P", "hash", None, NOW, NOW + timedelta(days=1)),
            _audit(AuditAction.CREATE_ORGANIZATION),
        )
        user = Account("staff001", "ORG-P", "", AccountRole.GENERAL, "s@e.jp", "h1", None, NOW)
        await store.create_user(user, _audit(AuditAction.REGISTER_USER, "staff001"))
        assert await _changed_at(store, "staff001") is None
        # A rehash: the same password.
        assert await store.set_password("staff001", "h2", NOW) is None
        assert await _changed_at(store, "staff001") is None

        change = [_audit(AuditAction.CHANGE_PASSWORD, "staff001")]
        written = await store.set_password("staff001", "h3", NOW, change, initial=False)
        # Milliseconds of the CA's clock (the microseconds are cut), as written.
        first = NOW.replace(microsecond=456000)
        assert written == first and await _changed_at(store, "staff001") == first
        # A reset in the same millisecond, and one stamped by a CA host whose clock is
        # behind: each still comes after the one before.
        assert await store.set_password("staff001", "h4", NOW, initial=True) == first + MS
        assert await _changed_at(store, "staff001") == first + MS
        await store.set_password("staff001", "h5", NOW - timedelta(seconds=2), initial=False)
        assert await _changed_at(store, "staff001") == first + 2 * MS
        later = NOW + timedelta(seconds=5)
        await store.set_password("staff001", "h6", later, initial=False)
        assert await _changed_at(store, "staff001") == later.replace(microsecond=456000)

        # A master user: the operator's reset stamps at once (its sessions end then), the
        # re-registration with the new initial password again.
        master = Account("boss0001", "ORG-P", "", AccountRole.MASTER, "b@e.jp", "h", None, NOW)
        await store.create_user(master, _audit(AuditAction.REGISTER_USER, "boss0001"))
        reset_at = NOW + timedelta(minutes=1)
        initial = InitialPassword("ORG-P", "init", "boss0001", reset_at, reset_at + timedelta(1))
        await store.put_initial_password(initial, _audit(AuditAction.RESET_PASSWORD, "boss0001"))
        assert await _changed_at(store, "boss0001") == reset_at.replace(microsecond=456000)
        registered_at = reset_at + timedelta(minutes=1)
        await store.register_master(
            initial,
            Account("boss0001", "ORG-P", "", AccountRole.MASTER, "n@e.jp", "h2", None, NOW),
            _audit(AuditAction.RESET_MASTER, "boss0001", registered_at),
        )
        assert await _changed_at(store, "boss0001") == registered_at.replace(microsecond=456000)
        # The other user's stamp did not move.
        assert await _changed_at(store, "staff001") == later.replace(microsecond=456000)

    asyncio.run(scenario())


def test_migration_8_leaves_earlier_accounts_unstamped(database_url: str) -> None:
    database = open_database(database_url, readers=1)
    try:
        migrate(database, MIGRATIONS[:7])
        insert_early_account(database)
        assert migrate(database) == [8]
        store = SqlAccountStore(database)
        assert asyncio.run(_changed_at(store, "olduser1")) is None
        asyncio.run(store.set_password("olduser1", "new", NOW, initial=False))
        assert asyncio.run(_changed_at(store, "olduser1")) == NOW.replace(microsecond=456000)
    finally:
        database.close()
