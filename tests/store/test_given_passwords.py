"""Whether a password was given to its user (SPEC A5, issue 11) in both real databases:
written with the account, kept by a rehash, set by a reset, cleared by the user's own
change; and migration 5 on a store with accounts from before, which keep working."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

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

NOW = datetime(2026, 11, 21, 1, 2, 3, tzinfo=UTC)


def _audit(action: AuditAction, user_id: str | None = None) -> AuditEntry:
    return AuditEntry(NOW, "operator", action, user_id, {})


async def _organization(store: SqlAccountStore, organization_id: str) -> None:
    await store.create_organization(
        Organization(organization_id, f"組織 {organization_id}", NOW),
        InitialPassword(organization_id, "hash", None, NOW, NOW),
        _audit(AuditAction.CREATE_ORGANIZATION),
    )


def test_the_flag_is_written_kept_set_and_cleared(database: Database) -> None:
    store = SqlAccountStore(database)

    async def scenario() -> None:
        await _organization(store, "ORG-A")
        given = Account(
            "staff001", "ORG-A", "", AccountRole.GENERAL, "s@e.jp", "h1", None, NOW, True
        )
        await store.create_user(given, _audit(AuditAction.REGISTER_USER, "staff001"))
        read = await store.account("staff001")
        assert read is not None and read.password_initial
        await store.set_password("staff001", "h2", NOW)  # a rehash keeps it
        read = await store.account("staff001")
        assert read is not None and (read.password_hash, read.password_initial) == ("h2", True)
        change = [_audit(AuditAction.CHANGE_PASSWORD, "staff001")]
        await store.set_password("staff001", "h3", NOW, change, initial=False)
        read = await store.account("staff001")
        assert read is not None and (read.password_hash, read.password_initial) == ("h3", False)
        await store.set_password("staff001", "h4", NOW, initial=True)  # a reset
        (listed,) = await store.accounts("ORG-A")
        assert listed.password_initial and listed.password_hash == "h4"

    asyncio.run(scenario())


def test_migration_5_keeps_earlier_accounts_usable(database_url: str) -> None:
    database = open_database(database_url, readers=1)
    try:
        migrate(database, MIGRATIONS[:4])
        insert_early_account(database)
        assert migrate(database) == [m.version for m in MIGRATIONS[4:]]
        account = asyncio.run(SqlAccountStore(database).account("olduser1"))
        assert account is not None and not account.password_initial
    finally:
        database.close()
