"""SPEC B2, B3, B9, C2 time rules through the real services on real Redis and SQLite, with
an injected clock (never a patched datetime)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from ca_service.adapters.keystore import CaFiles
from ca_service.adapters.mail import templates
from ca_service.adapters.mail.outbox import SqlOutbox
from ca_service.adapters.passwords import Argon2Passwords, PasswordHashing
from ca_service.adapters.redis.client import peer
from ca_service.adapters.redis.codes import RedisCodeStore
from ca_service.adapters.redis.lockout import RedisLockoutStore
from ca_service.adapters.sql.accounts import SqlAccountStore
from ca_service.adapters.sql.certificates import SqlCertificateStore
from ca_service.adapters.sql.database import Database
from ca_service.config import load_settings
from ca_service.domain.validity import renewal_opens_at
from ca_service.errors import AlreadyIssued, CAError, InvalidCredentials, Locked
from ca_service.pki.certificates import ClientCertificateFactory
from ca_service.services.accounts import AccountService
from ca_service.services.enrollment import EnrollmentService
from ca_service.services.issuance import IssuanceService
from tests.fakes import FakeClock
from tests.support import PASSPHRASE, ca_env, init_ca

START = datetime(2026, 11, 21, 1, 0, 0, tzinfo=UTC)
PASSWORD = "Sp3c-Rule!"


@pytest.fixture(scope="module")
def ca_files(tmp_path_factory: pytest.TempPathFactory) -> CaFiles:
    return init_ca(tmp_path_factory.mktemp("rules") / "ca")


@dataclass
class World:
    clock: FakeClock
    database: Database
    enrollment: EnrollmentService
    accounts: AccountService
    user_id: str
    email: str
    parts: dict[str, Any]

    async def code_for(self, email: str) -> str:
        rows = await self.database.read(
            lambda c: c.execute(
                "SELECT body FROM outbox WHERE recipient = ? AND kind = 'code' ORDER BY id DESC",
                (email,),
            ).fetchall()
        )
        match = re.search(r"(?<!\d)(\d{6})(?!\d)", rows[0][0])
        assert match
        return str(match.group(1))


@pytest.fixture
async def world(
    ca_files: CaFiles, sqlite_database: Database, redis_url: str
) -> AsyncIterator[World]:
    database = sqlite_database
    settings = load_settings(ca_env(ca_files.data_dir))
    loaded = ca_files.load(PASSPHRASE.encode())
    clock = FakeClock(START)
    redis = Redis.from_url(redis_url)
    factory = ClientCertificateFactory(
        loaded.issuing_signer,
        issuer_name=loaded.issuing.subject.public_bytes(),
        issuer_key_id=b"\x01" * 20,
        profile=settings.client_profile,
    )
    certificates = SqlCertificateStore(database)
    issuance = IssuanceService(
        factory=factory,
        store=certificates,
        clock=clock,
        chain=(loaded.issuing, loaded.root),
        pkcs12_kdf_rounds=1000,
    )
    accounts_store = SqlAccountStore(database)
    lockouts = RedisLockoutStore(peer(redis), "rules:")
    passwords = PasswordHashing(
        Argon2Passwords(memory_kib=1024, time_cost=1), concurrency=2, queue=8
    )
    parts: dict[str, Any] = {
        "accounts": accounts_store,
        "certificates": certificates,
        "lockouts": lockouts,
        "codes_store": RedisCodeStore(peer(redis), "rules:"),
        "passwords": passwords,
        "templates": templates,
        "issuance": issuance,
        "clock": clock,
        "code_key": b"k" * 32,
    }
    enrollment = EnrollmentService(**parts)
    accounts = AccountService(
        accounts=accounts_store,
        lockouts=lockouts,
        passwords=passwords,
        templates=templates,
        clock=clock,
    )
    organization, initial = await accounts.create_organization("規則テスト株式会社")
    await accounts.register_master(
        organization_id=organization.organization_id,
        initial_password=initial.value,
        user_id="rules001",
        password=PASSWORD,
        email="rules001@example.jp",
    )
    yield World(clock, database, enrollment, accounts, "rules001", "rules001@example.jp", parts)
    await redis.aclose()


async def _enroll(world: World) -> datetime:
    """Authenticate, verify the mailed code, issue; returns notAfter."""
    started = await world.enrollment.start_authentication(world.user_id, PASSWORD)
    code = await world.code_for(world.email)
    verified = await world.enrollment.verify_code(started.session_handle, code)
    issued = await world.enrollment.issue_pkcs12(verified.ticket, PASSWORD)
    return issued.record.not_after


async def test_code_is_valid_for_exactly_30_minutes(world: World) -> None:
    started = await world.enrollment.start_authentication(world.user_id, PASSWORD)
    assert started.code_expires_at == START + timedelta(minutes=30)
    code = await world.code_for(world.email)
    world.clock.advance(timedelta(minutes=30) - timedelta(seconds=1))
    await world.enrollment.verify_code(started.session_handle, code)

    started = await world.enrollment.start_authentication(world.user_id, PASSWORD)
    code = await world.code_for(world.email)
    world.clock.advance(timedelta(minutes=30))
    with pytest.raises(CAError) as caught:
        await world.enrollment.verify_code(started.session_handle, code)
    assert caught.value.reason == "CODE_EXPIRED"


async def test_new_request_replaces_the_old_code(world: World) -> None:
    first = await world.enrollment.start_authentication(world.user_id, PASSWORD)
    first_code = await world.code_for(world.email)
    await world.enrollment.start_authentication(world.user_id, PASSWORD)
    with pytest.raises(CAError) as caught:
        await world.enrollment.verify_code(first.session_handle, first_code)
    assert caught.value.reason == "CODE_EXPIRED"


async def test_five_wrong_codes_void_the_code(world: World) -> None:
    started = await world.enrollment.start_authentication(world.user_id, PASSWORD)
    code = await world.code_for(world.email)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    reasons = []
    for _ in range(5):
        with pytest.raises(CAError) as caught:
            await world.enrollment.verify_code(started.session_handle, wrong)
        reasons.append((caught.value.reason, caught.value.metadata.get("tries_left")))
    assert reasons == [("CODE_INVALID", str(n)) for n in (4, 3, 2, 1, 0)]
    with pytest.raises(CAError) as caught:
        await world.enrollment.verify_code(started.session_handle, code)
    assert caught.value.reason == "CODE_EXPIRED"


async def test_lock_lasts_exactly_60_minutes(world: World) -> None:
    for attempt in range(6):
        with pytest.raises(CAError) as caught:
            await world.enrollment.start_authentication(world.user_id, "Wr0ng-pass!")
        assert isinstance(caught.value, Locked if attempt == 5 else InvalidCredentials)
    world.clock.advance(timedelta(minutes=60) - timedelta(seconds=1))
    with pytest.raises(Locked):
        await world.enrollment.start_authentication(world.user_id, PASSWORD)
    world.clock.advance(timedelta(seconds=1))
    await world.enrollment.start_authentication(world.user_id, PASSWORD)


async def test_unknown_user_and_wrong_password_answer_alike(world: World) -> None:
    answers = []
    for user_id, password in (
        ("rules001", "Wr0ng-pass!"),
        ("nobody99", "Wr0ng-pass!"),
        ("nobody99", PASSWORD),
    ):
        with pytest.raises(CAError) as caught:
            await world.enrollment.start_authentication(user_id, password)
        error = caught.value
        answers.append((type(error), error.reason, error.message, dict(error.metadata)))
    assert answers[0] == answers[1] == answers[2]
    for _ in range(5):  # unknown IDs are counted like real ones (SPEC B9)
        with pytest.raises(CAError):
            await world.enrollment.start_authentication("nobody99", "x")
    with pytest.raises(Locked) as caught:
        await world.enrollment.start_authentication("nobody99", "Wr0ng-pass!")
    assert "locked_until" in caught.value.metadata


async def test_renewal_window_opens_30_days_before_expiry(world: World) -> None:
    not_after = await _enroll(world)
    opens = renewal_opens_at(not_after)
    world.clock.current = opens - timedelta(seconds=1)
    with pytest.raises(AlreadyIssued) as caught:
        await world.enrollment.start_authentication(world.user_id, PASSWORD)
    assert caught.value.metadata["renewal_opens_at"] == opens.isoformat()
    world.clock.current = opens
    await world.enrollment.start_authentication(world.user_id, PASSWORD)


async def test_reissue_after_expiry_and_after_revocation(world: World) -> None:
    not_after = await _enroll(world)
    world.clock.current = not_after + timedelta(seconds=1)
    second_not_after = await _enroll(world)
    assert second_not_after > not_after
    # SPEC C6: once the current certificate is revoked, re-issue is allowed at once.
    await world.database.write(
        lambda c: c.execute(
            "UPDATE certificates SET revoked_at = ? WHERE not_after = ?",
            (int(world.clock.now().timestamp()), int(second_not_after.timestamp())),
        )
    )
    await _enroll(world)


async def test_ticket_is_single_use(world: World) -> None:
    started = await world.enrollment.start_authentication(world.user_id, PASSWORD)
    verified = await world.enrollment.verify_code(
        started.session_handle, await world.code_for(world.email)
    )
    with pytest.raises(InvalidCredentials):
        await world.enrollment.issue_pkcs12(verified.ticket, "N0t-the-login!")
    with pytest.raises(CAError) as caught:
        await world.enrollment.issue_pkcs12(verified.ticket, PASSWORD)
    assert caught.value.reason == "TICKET_INVALID"


async def test_outbox_keeps_lock_and_code_mail(world: World) -> None:
    for _ in range(6):
        with pytest.raises(CAError):
            await world.enrollment.start_authentication(world.user_id, "Wr0ng-pass!")
    rows = await SqlOutbox(world.database).list()
    assert [row.kind for row in rows] == ["locked"]
    await asyncio.sleep(0)


async def test_lock_and_unlock_are_audited(world: World) -> None:
    for _ in range(6):
        with pytest.raises(CAError):
            await world.enrollment.start_authentication(world.user_id, "Wr0ng-pass!")
    await world.accounts.unlock(acting_user_id="", user_id=world.user_id)
    rows = await world.database.read(
        lambda c: c.execute("SELECT actor, action, user_id FROM audit_log ORDER BY id").fetchall()
    )
    assert ("system", "lock", world.user_id) in rows
    assert ("operator", "unlock", world.user_id) in rows
    assert ("rules001", "register_master", world.user_id) in rows


async def test_stronger_hash_parameters_rehash_at_next_login(world: World) -> None:
    before = await SqlAccountStore(world.database).account(world.user_id)
    assert before is not None and "m=1024,t=1" in before.password_hash
    stronger = Argon2Passwords(memory_kib=2048, time_cost=2)
    raised = EnrollmentService(
        **(world.parts | {"passwords": PasswordHashing(stronger, concurrency=1, queue=1)})
    )
    await raised.start_authentication(world.user_id, PASSWORD)
    after = await SqlAccountStore(world.database).account(world.user_id)
    assert after is not None and "m=2048,t=2" in after.password_hash
    assert stronger.verify(after.password_hash, PASSWORD)


async def test_login_shares_the_lockout_ignores_renewal_and_rehashes(world: World) -> None:
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            await world.enrollment.start_authentication(world.user_id, "Wr0ng-pass!")
    with pytest.raises(Locked):  # the 6th wrong password, through login
        await world.enrollment.login(world.user_id, "Wr0ng-pass!")
    world.clock.advance(timedelta(minutes=60))
    not_after = await _enroll(world)
    world.clock.current = renewal_opens_at(not_after) - timedelta(days=1)
    with pytest.raises(AlreadyIssued):
        await world.enrollment.start_authentication(world.user_id, PASSWORD)
    stronger = Argon2Passwords(memory_kib=2048, time_cost=2)
    raised = EnrollmentService(
        **(world.parts | {"passwords": PasswordHashing(stronger, concurrency=1, queue=1)})
    )
    view = await raised.login(world.user_id, PASSWORD)  # login is not issuance (no C2)
    assert view.account.user_id == world.user_id and view.now == world.clock.now()
    assert (view.lockout.failures, view.lockout.locks, view.lockout.blocked) == (0, 0, False)
    after = await SqlAccountStore(world.database).account(world.user_id)
    assert after is not None and "m=2048,t=2" in after.password_hash
    rows = await world.database.read(
        lambda c: c.execute(
            "SELECT actor, user_id FROM audit_log WHERE action = 'login'"
        ).fetchall()
    )
    assert rows == [(world.user_id, world.user_id)]
