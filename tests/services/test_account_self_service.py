"""Issue 11 on in-memory ports: パスワード変更 (SPEC A3, A5) under the lockout of B3–B5,
given passwords that must be replaced before issuance or login, 認証コードの再送 with its
limits, and a master user's certificate tools (summaries, revocation) within its own
organisation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from ca_service.domain.accounts import AuditAction
from ca_service.domain.codes import CODE_TTL
from ca_service.domain.holdings import Holding, RevocationCause
from ca_service.domain.lockout import FAILURES_TO_LOCK, LOCK_DURATION
from ca_service.domain.resend import RESEND_INTERVAL, RESEND_WINDOW, RESENDS_PER_WINDOW
from ca_service.domain.validity import renewal_opens_at
from ca_service.errors import CAError, InvalidCredentials, Locked
from ca_service.pki.crl import Reason
from ca_service.services.user_revocation import UserRevocation
from tests.services.conftest import CHOSEN_PASSWORD, Services

WRONG = "Wr0ng-pass!"
NEW = "N3w-passw0rd"
MASTER_PASSWORD = "M4ster-pass!"


def _codes(services: Services, user_id: str) -> list[str]:
    return [
        re.search(r"認証コード：(\d+)", m.body).group(1)  # type: ignore[union-attr]
        for m in services.stores.journal.mail_to(f"{user_id}@example.jp")
        if m.kind == "code"
    ]


async def _given(services: Services, user_id: str = "taro0001") -> str:
    """A general user with the password its master would hand over (not yet its own)."""
    made, _ = await services.accounts.create_organization(f"組織 {user_id}")
    _, secret = await services.accounts.create_user(
        acting_user_id="",
        organization_id=made.organization_id,
        user_id=user_id,
        email=f"{user_id}@example.jp",
    )
    return secret.value


async def _reason(call: object) -> str:
    with pytest.raises(CAError) as caught:
        await call  # type: ignore[misc]
    return str(caught.value.reason)


# -- password change and given passwords (SPEC A3, A5) ----------------------------------------


async def test_a_given_password_opens_nothing_until_the_user_chooses_its_own(
    services: Services,
) -> None:
    given = await _given(services)
    enrollment = services.enrollment
    assert await _reason(enrollment.start_authentication("taro0001", given)) == (
        "PASSWORD_CHANGE_REQUIRED"
    )
    assert await _reason(enrollment.login("taro0001", given)) == "PASSWORD_CHANGE_REQUIRED"
    assert _codes(services, "taro0001") == []  # no code was sent for a given password
    # The given password is not accepted as the user's own choice.
    assert await _reason(enrollment.change_password("taro0001", given, given)) == (
        "PASSWORD_UNCHANGED"
    )
    before = await services.stores.accounts.account("taro0001")
    assert before is not None and before.password_changed_at is None
    with services.stores.feed.user_changes() as announced:
        view = await enrollment.change_password("taro0001", given, NEW)
    assert not view.account.password_initial
    # Stamped on the CA's clock and announced: gateways end the user's other sessions.
    assert view.account.password_changed_at == services.clock.now()
    assert "taro0001" in announced
    entry = services.stores.journal.audit[-1]
    assert (entry.actor, entry.action, entry.user_id) == (
        "taro0001",
        AuditAction.CHANGE_PASSWORD,
        "taro0001",
    )
    assert entry.details == {"was_initial": "true", "sessions": "others_ended"}
    started = await enrollment.start_authentication("taro0001", NEW)
    assert started.masked_email == "t***@example.jp"
    assert await _reason(enrollment.start_authentication("taro0001", given)) == (
        "INVALID_CREDENTIALS"
    )


async def test_a_reset_by_the_master_is_a_given_password_again(services: Services) -> None:
    organization, initial = await services.accounts.create_organization("リセット株式会社")
    await services.accounts.register_master(
        organization_id=organization.organization_id,
        initial_password=initial.value,
        user_id="master01",
        password=MASTER_PASSWORD,
        email="master01@example.jp",
    )
    _, given = await services.accounts.create_user(
        acting_user_id="master01", organization_id="", user_id="staff001", email="s@e.jp"
    )
    changed = (await services.enrollment.change_password("staff001", given.value, NEW)).account
    with services.stores.feed.user_changes() as announced:
        reset = await services.accounts.reset_password(
            acting_user_id="master01", user_id="staff001"
        )
    assert reset.value != NEW
    # At the same instant of the clock, still after the user's own change (which a session
    # may hold): every session of the user ends.
    account = await services.stores.accounts.account("staff001")
    assert account is not None and changed.password_changed_at is not None
    assert account.password_changed_at == changed.password_changed_at + timedelta(milliseconds=1)
    assert "staff001" in announced
    assert await _reason(services.enrollment.login("staff001", reset.value)) == (
        "PASSWORD_CHANGE_REQUIRED"
    )
    audit = services.stores.journal.audit[-1]
    assert (audit.actor, audit.action, audit.user_id) == (
        "master01",
        AuditAction.RESET_PASSWORD,
        "staff001",
    )
    assert audit.details == {"role": "general", "sessions": "ended"}
    # The master's own password was chosen, never given.
    assert (await services.enrollment.login("master01", MASTER_PASSWORD)).account.user_id


async def test_the_new_password_must_follow_the_rules_and_nothing_is_counted(
    services: Services,
) -> None:
    await services.new_user()
    for weak in ("short1!", "nouppercase1!", "NoSymbol123", "No-Digits!!", "Ｗｉｄｅ-pass1"):
        assert (
            await _reason(services.enrollment.change_password("taro0001", WRONG, weak))
            == "INVALID_PASSWORD"
        )
    # Refused before the current password was checked: no failure counted.
    assert (await services.stores.lockouts.state("taro0001")).failures == 0


async def test_password_change_is_no_way_around_the_lockout(services: Services) -> None:
    await services.new_user()
    enrollment = services.enrollment
    # Wrong current passwords count in the same lockout as ユーザー認証 and ログイン.
    for _ in range(FAILURES_TO_LOCK - 2):
        with pytest.raises(InvalidCredentials):
            await enrollment.change_password("taro0001", WRONG, NEW)
    with pytest.raises(InvalidCredentials):
        await enrollment.start_authentication("taro0001", WRONG)
    with pytest.raises(Locked):
        await enrollment.change_password("taro0001", WRONG, NEW)
    # Locked: even the right current password changes nothing, and clears nothing.
    with pytest.raises(Locked):
        await enrollment.change_password("taro0001", CHOSEN_PASSWORD, NEW)
    with pytest.raises(Locked):
        await enrollment.login("taro0001", CHOSEN_PASSWORD)
    assert (await services.stores.lockouts.state("taro0001")).locks == 1
    assert AuditAction.LOCK in services.stores.journal.actions()
    services.clock.advance(LOCK_DURATION)
    await enrollment.change_password("taro0001", CHOSEN_PASSWORD, NEW)
    assert (await enrollment.login("taro0001", NEW)).account.user_id == "taro0001"


async def test_an_unknown_user_changing_a_password_is_counted_like_a_real_one(
    services: Services,
) -> None:
    for _ in range(FAILURES_TO_LOCK - 1):
        with pytest.raises(InvalidCredentials):
            await services.enrollment.change_password("nobody01", WRONG, NEW)
    with pytest.raises(Locked):
        await services.enrollment.change_password("nobody01", WRONG, NEW)


# -- 認証コードの再送 -----------------------------------------------------------------------


async def test_resend_replaces_the_code_and_names_when_to_try_again(services: Services) -> None:
    _, password = await services.new_user()
    enrollment, clock = services.enrollment, services.clock
    started = await enrollment.start_authentication("taro0001", password)
    first_sent = clock.now()
    with pytest.raises(CAError) as caught:
        await enrollment.resend_code(started.session_handle)
    assert caught.value.reason == "RESEND_LIMITED"
    assert caught.value.metadata["retry_at"] == (first_sent + RESEND_INTERVAL).isoformat()
    assert len(_codes(services, "taro0001")) == 1

    clock.advance(RESEND_INTERVAL)
    resent = await enrollment.resend_code(started.session_handle)
    assert resent.session_handle == started.session_handle
    assert resent.code_expires_at == clock.now() + CODE_TTL
    old, new = _codes(services, "taro0001")
    if old != new:  # the old code is void: it is just a wrong code now
        assert await _reason(enrollment.verify_code(started.session_handle, old)) == (
            "CODE_INVALID"
        )
    verified = await enrollment.verify_code(started.session_handle, new)
    assert verified.user_id == "taro0001"
    # Used: nothing left to resend.
    clock.advance(RESEND_INTERVAL)
    assert await _reason(enrollment.resend_code(started.session_handle)) == "CODE_EXPIRED"


async def test_resends_per_window_then_the_oldest_must_leave_the_window(
    services: Services,
) -> None:
    _, password = await services.new_user()
    enrollment, clock = services.enrollment, services.clock
    started = await enrollment.start_authentication("taro0001", password)
    first_resend = clock.now() + RESEND_INTERVAL
    for _ in range(RESENDS_PER_WINDOW):
        clock.advance(RESEND_INTERVAL)
        await enrollment.resend_code(started.session_handle)
    clock.advance(RESEND_INTERVAL)
    with pytest.raises(CAError) as caught:
        await enrollment.resend_code(started.session_handle)
    assert caught.value.metadata["retry_at"] == (first_resend + RESEND_WINDOW).isoformat()
    # A new authentication does not reset the count: the limit is the user's.
    again = await enrollment.start_authentication("taro0001", password)
    clock.advance(RESEND_INTERVAL)
    assert await _reason(enrollment.resend_code(again.session_handle)) == "RESEND_LIMITED"
    clock.current = first_resend + RESEND_WINDOW
    await enrollment.resend_code(again.session_handle)
    assert len(_codes(services, "taro0001")) == 1 + RESENDS_PER_WINDOW + 1 + 1


async def test_no_resend_for_an_unknown_handle_or_a_locked_user(services: Services) -> None:
    _, password = await services.new_user()
    enrollment, clock = services.enrollment, services.clock
    assert await _reason(enrollment.resend_code("")) == "CODE_EXPIRED"
    assert await _reason(enrollment.resend_code("x" * 40)) == "CODE_EXPIRED"
    started = await enrollment.start_authentication("taro0001", password)
    for _ in range(FAILURES_TO_LOCK):
        with pytest.raises(CAError):
            await enrollment.login("taro0001", WRONG)
    clock.advance(RESEND_INTERVAL)
    assert await _reason(enrollment.resend_code(started.session_handle)) == "LOCKED"
    clock.advance(CODE_TTL)
    assert await _reason(enrollment.resend_code(started.session_handle)) == "CODE_EXPIRED"


# -- a master user's page: certificates, revocation --------------------------------------------


async def _organization_with_master(services: Services, name: str, master: str) -> str:
    organization, initial = await services.accounts.create_organization(name)
    await services.accounts.register_master(
        organization_id=organization.organization_id,
        initial_password=initial.value,
        user_id=master,
        password=MASTER_PASSWORD,
        email=f"{master}@example.jp",
    )
    return organization.organization_id


async def test_the_master_sees_each_users_certificate(services: Services) -> None:
    await _organization_with_master(services, "表示株式会社", "master01")
    for user_id in ("staff001", "staff002", "staff003", "staff004"):
        await services.accounts.create_user(
            acting_user_id="master01", organization_id="", user_id=user_id, email="s@e.jp"
        )
    valid = (await services.issued("staff001")).serial_hex
    await services.issued("staff002")
    await services.revoke(user_id="staff002")
    expired = (await services.issued("staff003")).serial_hex
    services.clock.advance(timedelta(days=400))
    fresh = (await services.issued("staff001")).serial_hex  # staff001 renews; staff003 does not
    views = await services.accounts.users(acting_user_id="master01", organization_id="")
    summaries = {v.account.user_id: v.certificate for v in views}
    staff001, staff002, staff003, staff004 = (
        summaries[u] for u in ("staff001", "staff002", "staff003", "staff004")
    )
    assert staff001 is not None and staff001.holding is Holding.VALID
    assert staff001.serial_hex == fresh != valid
    assert staff001.not_after is not None
    assert staff001.renewal_opens_at == renewal_opens_at(staff001.not_after)
    assert staff001.renewal_open is False
    assert staff002 is not None and staff002.holding is Holding.REVOKED and staff002.renewal_open
    assert staff003 is not None and (staff003.holding, staff003.serial_hex) == (
        Holding.EXPIRED,
        expired,
    )
    assert staff004 is not None and staff004.holding is Holding.NONE and staff004.renewal_open
    assert staff001.renewal_opens_at is not None
    services.clock.current = staff001.renewal_opens_at
    views = await services.accounts.users(acting_user_id="master01", organization_id="")
    (renewing,) = [v.certificate for v in views if v.account.user_id == "staff001"]
    assert renewing is not None and renewing.renewal_open


async def test_a_master_revokes_its_own_organisations_general_users_only(
    services: Services,
) -> None:
    await _organization_with_master(services, "失効株式会社", "master01")
    await _organization_with_master(services, "他社株式会社", "master02")
    await services.accounts.create_user(
        acting_user_id="master01", organization_id="", user_id="staff001", email="s@e.jp"
    )
    await services.accounts.create_user(
        acting_user_id="master02", organization_id="", user_id="other001", email="o@e.jp"
    )
    for user_id in ("staff001", "other001", "master01", "master02"):
        await services.issued(user_id)
    revoking = UserRevocation(accounts=services.accounts, revocation=services.revocation)

    async def revoke(acting: str, user_id: str, cause: RevocationCause) -> str:
        return await _reason(revoking.revoke(acting_user_id=acting, user_id=user_id, cause=cause))

    # Another organisation's user, as if it did not exist; masters are the operator's.
    assert await revoke("master01", "other001", RevocationCause.LOST_PC) == "USER_NOT_FOUND"
    assert await revoke("master01", "master02", RevocationCause.LOST_PC) == "USER_NOT_FOUND"
    assert await revoke("master01", "master01", RevocationCause.LOST_PC) == "PERMISSION_DENIED"
    assert await revoke("staff001", "staff001", RevocationCause.LOST_PC) == "PERMISSION_DENIED"
    assert await services.stores.revocations.since(0) == []

    (record,) = await revoking.revoke(
        acting_user_id="master01", user_id="staff001", cause=RevocationCause.LOST_PC
    )
    assert record.reason is Reason.KEY_COMPROMISE
    audit = services.stores.journal.audit[-1]
    assert (audit.actor, audit.action, audit.user_id) == (
        "master01",
        AuditAction.REVOKE,
        "staff001",
    )
    assert await revoke("master01", "staff001", RevocationCause.PC_CHANGE) == (
        "CERTIFICATE_NOT_FOUND"
    )
    await services.issued("staff001")
    (record,) = await revoking.revoke(
        acting_user_id="master01", user_id="staff001", cause=RevocationCause.PC_CHANGE
    )
    assert record.reason is Reason.SUPERSEDED
    # The operator may revoke anyone's, a master user's included.
    (record,) = await revoking.revoke(
        acting_user_id="", user_id="master02", cause=RevocationCause.PC_CHANGE
    )
    assert services.stores.journal.audit[-1].actor == "operator"
