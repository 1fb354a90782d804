"""Enrollment and accounts (SPEC A4, A5, B1–B9, C2, C4) on in-memory ports: the mails and
audit entries each step writes, the lockout, the code and the ticket, in milliseconds.
(tests/services/test_enrollment_rules.py runs the time rules on real Redis and SQLite.)"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from ca_service.domain.codes import CODE_MAX_TRIES, CODE_TTL, TICKET_TTL
from ca_service.domain.lockout import FAILURES_TO_LOCK, LOCK_DURATION, LOCKS_TO_BLOCK
from ca_service.domain.mail import MailKind
from ca_service.errors import Blocked, Busy, CAError, InvalidCredentials, Locked
from tests.services.conftest import Services

WRONG = "Wr0ng-pass!"


def _last_code(services: Services, user_id: str) -> str:
    (*_, mail) = [
        m for m in services.stores.journal.mail_to(f"{user_id}@example.jp") if m.kind == "code"
    ]
    match = re.search(r"認証コード：(\d+)", mail.body)
    assert match, mail.body
    return match.group(1)


async def test_the_whole_journey_writes_one_code_mail_and_one_certificate(
    services: Services,
) -> None:
    _, password = await services.new_user()
    started = await services.enrollment.start_authentication("taro0001", password)
    assert started.code_expires_at == services.clock.now() + CODE_TTL
    assert started.masked_email == "t***@example.jp"
    (mail,) = services.stores.journal.mail_to("taro0001@example.jp")
    assert mail.kind is MailKind.CODE and mail.expires_at == started.code_expires_at

    verified = await services.enrollment.verify_code(
        started.session_handle, _last_code(services, "taro0001")
    )
    assert verified.ticket_expires_at == services.clock.now() + TICKET_TTL
    issued = await services.enrollment.issue_pkcs12(verified.ticket, password)
    assert pkcs12.load_pkcs12(issued.pkcs12, password.encode()).cert is not None
    assert [r.serial for r in await services.issuance.for_user("taro0001")] == [
        issued.record.serial
    ]
    # The ticket is single use; a second enrollment meets the renewal window (C2).
    with pytest.raises(CAError) as caught:
        await services.enrollment.issue_pkcs12(verified.ticket, password)
    assert caught.value.reason == "TICKET_INVALID"
    with pytest.raises(CAError) as caught:
        await services.enrollment.start_authentication("taro0001", password)
    assert caught.value.reason == "ALREADY_ISSUED"


async def test_wrong_codes_count_down_then_void(services: Services) -> None:
    _, password = await services.new_user()
    started = await services.enrollment.start_authentication("taro0001", password)
    code = _last_code(services, "taro0001")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    left = []
    for _ in range(CODE_MAX_TRIES):
        with pytest.raises(CAError) as caught:
            await services.enrollment.verify_code(started.session_handle, wrong)
        left.append(caught.value.metadata["tries_left"])
    assert left == [str(n) for n in range(CODE_MAX_TRIES - 1, -1, -1)]
    with pytest.raises(CAError) as caught:
        await services.enrollment.verify_code(started.session_handle, code)
    assert caught.value.reason == "CODE_EXPIRED"


async def test_locks_then_blocks_with_mail_audit_and_announcements(services: Services) -> None:
    _, password = await services.new_user()
    journal = services.stores.journal
    for lock in range(1, LOCKS_TO_BLOCK + 1):
        for attempt in range(1, FAILURES_TO_LOCK + 1):
            expected = (
                InvalidCredentials
                if attempt < FAILURES_TO_LOCK
                else (Blocked if lock == LOCKS_TO_BLOCK else Locked)
            )
            with pytest.raises(expected) as caught:
                await services.enrollment.start_authentication("taro0001", WRONG)
        if lock < LOCKS_TO_BLOCK:
            assert f"after {FAILURES_TO_LOCK} consecutive" in caught.value.message
            services.clock.advance(LOCK_DURATION)
    kinds = [m.kind for m in journal.mail_to("taro0001@example.jp")]
    assert kinds == [MailKind.LOCKED] * (LOCKS_TO_BLOCK - 1) + [MailKind.BLOCKED]
    assert journal.actions().count("lock") == LOCKS_TO_BLOCK - 1
    assert journal.actions().count("block") == 1
    account = await services.stores.accounts.account("taro0001")
    assert account is not None and account.blocked_at == services.clock.now()
    # Even the right password is refused now, and nothing more is counted.
    with pytest.raises(Blocked):
        await services.enrollment.start_authentication("taro0001", password)

    unlocked = await services.accounts.unlock(acting_user_id="", user_id="taro0001")
    assert unlocked.account.blocked_at is None and unlocked.lockout.locks == 0
    assert journal.mail_to("taro0001@example.jp")[-1].kind is MailKind.UNLOCKED
    assert journal.audit[-1].details == {"was": "blocked"}
    await services.enrollment.start_authentication("taro0001", password)


async def test_unknown_ids_are_counted_and_answered_like_real_ones(services: Services) -> None:
    await services.new_user()
    answers = []
    for user_id in ("taro0001", "nobody01"):
        with pytest.raises(CAError) as caught:
            await services.enrollment.start_authentication(user_id, WRONG)
        answers.append((type(caught.value), caught.value.message, caught.value.metadata))
    assert answers[0] == answers[1]
    for _ in range(FAILURES_TO_LOCK - 1):
        with pytest.raises(CAError):
            await services.enrollment.start_authentication("nobody01", WRONG)
    assert (await services.stores.lockouts.state("nobody01")).locked_until is not None
    # Audited (SPEC F3) but no mail: there is nobody to write to.
    assert services.stores.journal.audit[-1].details["known_user"] == "False"


async def test_busy_hashing_refuses_before_counting(services: Services) -> None:
    _, password = await services.new_user()
    services.stores.passwords.refuse_next = 1
    with pytest.raises(Busy):
        await services.enrollment.start_authentication("taro0001", WRONG)
    assert (await services.stores.lockouts.state("taro0001")).failures == 0
    await services.enrollment.start_authentication("taro0001", password)


async def test_weaker_hashes_are_replaced_at_the_next_login(services: Services) -> None:
    _, password = await services.new_user()
    before = await services.stores.accounts.account("taro0001")
    assert before is not None and before.password_hash.startswith("v1$")
    services.stores.passwords.version = 2
    view = await services.enrollment.login("taro0001", password)
    assert view.account.user_id == "taro0001"
    after = await services.stores.accounts.account("taro0001")
    assert after is not None and after.password_hash.startswith("v2$")
    assert services.stores.journal.actions()[-1] == "login"


async def test_code_expires_with_its_mail(services: Services) -> None:
    _, password = await services.new_user()
    started = await services.enrollment.start_authentication("taro0001", password)
    services.clock.advance(CODE_TTL)
    with pytest.raises(CAError) as caught:
        await services.enrollment.verify_code(
            started.session_handle, _last_code(services, "taro0001")
        )
    assert caught.value.reason == "CODE_EXPIRED"


async def test_master_registration_and_what_a_master_may_do(services: Services) -> None:
    organization, initial = await services.accounts.create_organization("マスター株式会社")
    master = await services.accounts.register_master(
        organization_id=organization.organization_id,
        initial_password=initial.value,
        user_id="master01",
        password="M4ster-pass!",
        email="master01@example.jp",
    )
    with pytest.raises(CAError) as caught:  # the initial password is single use
        await services.accounts.register_master(
            organization_id=organization.organization_id,
            initial_password=initial.value,
            user_id="master02",
            password="M4ster-pass!",
            email="master02@example.jp",
        )
    assert isinstance(caught.value, InvalidCredentials)
    user, _ = await services.accounts.create_user(
        acting_user_id=master.user_id, organization_id="", user_id="staff001", email="s@e.jp"
    )
    assert user.organization_id == organization.organization_id
    await services.new_user("other001", "他社")
    with pytest.raises(CAError) as caught:
        await services.accounts.user(acting_user_id=master.user_id, user_id="other001")
    assert caught.value.reason == "USER_NOT_FOUND"
    views = await services.accounts.users(acting_user_id=master.user_id, organization_id="")
    assert [v.account.user_id for v in views] == ["staff001", "master01"]
    assert services.clock.now() + timedelta(days=14) == initial.expires_at
