"""SPEC D1 on in-memory ports: a CA user's address changes only through the mailed link,
once, within 24 hours; the old address is told; the portal's registration links and
completion mail; who may do what."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from ca_service.domain.accounts import AuditAction
from ca_service.domain.email_verification import VerificationPurpose, link_token_hash
from ca_service.domain.mail import MailKind, OutgoingMail
from ca_service.domain.profiles import Caller, Role
from ca_service.domain.rules import EMAIL_LINK_TTL
from ca_service.errors import CAError, ErrorReason
from tests.services.conftest import Services

GATEWAY = Caller(Role.GATEWAY, "gw")
OPERATOR = Caller(Role.OPERATOR, "operator")
PORTAL = Caller(Role.PORTAL, "portal")
SERVICE = Caller(Role.SERVICE, "billing")
BASE = "https://gw.example.jp/email/verify"
CHANGE = VerificationPurpose.USER_EMAIL_CHANGE
REGISTRATION = VerificationPurpose.PORTAL_REGISTRATION
OLD, NEW = "taro0001@example.jp", "taro.new@example.jp"


def _token(mail: OutgoingMail, base: str = BASE) -> str:
    match = re.search(re.escape(base) + r"\?token=([A-Za-z0-9_-]{43})\n", mail.body)
    assert match, mail.body
    return match.group(1)


def _link_mails(services: Services, address: str) -> list[OutgoingMail]:
    return [
        m for m in services.stores.journal.mail_to(address) if m.kind == MailKind.EMAIL_VERIFICATION
    ]


async def _request_change(services: Services, address: str = NEW) -> str:
    await services.email.request(
        GATEWAY, CHANGE, user_id="taro0001", address=address, link_base_url=BASE
    )
    return _token(_link_mails(services, address)[-1])


async def _refused(reason: ErrorReason, work: object) -> CAError:
    with pytest.raises(CAError) as caught:
        await work  # type: ignore[misc]
    assert caught.value.reason is reason, caught.value.message
    return caught.value


async def test_the_address_changes_only_when_the_link_is_opened(services: Services) -> None:
    await services.new_user()
    requested = await services.email.request(
        GATEWAY, CHANGE, user_id="taro0001", address=NEW, link_base_url=BASE
    )
    assert requested.expires_at == services.clock.now() + EMAIL_LINK_TTL
    assert requested.masked_address == "t***@example.jp"
    (mail,) = _link_mails(services, NEW)
    assert mail.expires_at == requested.expires_at  # pointless to send after that
    assert "メール認証URLのご案内" in mail.subject and "24時間以内" in mail.body
    token = _token(mail)
    assert token not in mail.subject
    # Not yet: the old address stays until the link is opened.
    assert (await services.stores.accounts.account("taro0001")).email == OLD  # type: ignore[union-attr]
    assert link_token_hash(token) in services.stores.email_links.links
    assert token not in str(services.stores.email_links.links)

    services.clock.advance(timedelta(hours=23, minutes=59))
    # A look first (the page before the button): nothing changes.
    looked = await services.email.confirm(GATEWAY, token, check_only=True)
    assert (looked.purpose, looked.address, looked.user_id) == (CHANGE, NEW, "taro0001")
    assert (await services.stores.accounts.account("taro0001")).email == OLD  # type: ignore[union-attr]
    assert services.stores.journal.mail_to(OLD) == []
    with services.stores.feed.user_changes() as changed:
        verified = await services.email.confirm(GATEWAY, token)
    assert (verified.purpose, verified.address, verified.user_id) == (CHANGE, NEW, "taro0001")
    # Gateways following the revocation stream drop their cached record of the user.
    assert changed == {"taro0001"}
    assert (await services.stores.accounts.account("taro0001")).email == NEW  # type: ignore[union-attr]
    (notice,) = services.stores.journal.mail_to(OLD)
    assert notice.kind == MailKind.EMAIL_CHANGED and "変更" in notice.subject
    assert "t***@example.jp" in notice.body and NEW not in notice.body
    assert services.stores.journal.actions()[-2:] == [
        AuditAction.REQUEST_EMAIL_CHANGE,
        AuditAction.CHANGE_EMAIL,
    ]
    assert NEW not in str(services.stores.journal.audit)  # masked in the audit log


async def test_a_link_is_single_use(services: Services) -> None:
    await services.new_user()
    token = await _request_change(services)
    await services.email.confirm(GATEWAY, token)
    await _refused(ErrorReason.EMAIL_LINK_USED, services.email.confirm(GATEWAY, token))
    await _refused(
        ErrorReason.EMAIL_LINK_USED, services.email.confirm(GATEWAY, token, check_only=True)
    )
    # Still "used" after its 24 hours.
    services.clock.advance(EMAIL_LINK_TTL * 2)
    await _refused(ErrorReason.EMAIL_LINK_USED, services.email.confirm(GATEWAY, token))
    assert len(services.stores.journal.mail_to(OLD)) == 1  # one notice


async def test_a_link_expires_after_24_hours(services: Services) -> None:
    await services.new_user()
    token = await _request_change(services)
    services.clock.advance(EMAIL_LINK_TTL)
    await _refused(ErrorReason.EMAIL_LINK_EXPIRED, services.email.confirm(GATEWAY, token))
    await _refused(
        ErrorReason.EMAIL_LINK_EXPIRED, services.email.confirm(GATEWAY, token, check_only=True)
    )
    assert (await services.stores.accounts.account("taro0001")).email == OLD  # type: ignore[union-attr]
    assert services.stores.journal.mail_to(OLD) == []


async def test_unknown_and_malformed_links(services: Services) -> None:
    await services.new_user()
    await _request_change(services)
    for token in ("A" * 43, "", "not a token", "A" * 200):
        error = await _refused(
            ErrorReason.EMAIL_LINK_UNKNOWN, services.email.confirm(GATEWAY, token)
        )
        assert token not in error.message or not token


async def test_a_newer_link_replaces_the_older(services: Services) -> None:
    await services.new_user()
    first = await _request_change(services, "first@example.jp")
    services.clock.advance(timedelta(minutes=5))
    second = await _request_change(services, "second@example.jp")
    await _refused(ErrorReason.EMAIL_LINK_EXPIRED, services.email.confirm(GATEWAY, first))
    await services.email.confirm(GATEWAY, second)
    assert (await services.stores.accounts.account("taro0001")).email == "second@example.jp"  # type: ignore[union-attr]


async def test_the_current_address_and_bad_requests_are_refused(services: Services) -> None:
    await services.new_user()
    await _refused(
        ErrorReason.EMAIL_UNCHANGED,
        services.email.request(
            GATEWAY, CHANGE, user_id="taro0001", address=OLD, link_base_url=BASE
        ),
    )
    await _refused(
        ErrorReason.INVALID_EMAIL,
        services.email.request(
            GATEWAY, CHANGE, user_id="taro0001", address="no-at-sign", link_base_url=BASE
        ),
    )
    await _refused(
        ErrorReason.INVALID_ARGUMENT,
        services.email.request(
            GATEWAY, CHANGE, user_id="taro0001", address=NEW, link_base_url="http://evil.example/x"
        ),
    )
    await _refused(
        ErrorReason.USER_NOT_FOUND,
        services.email.request(
            GATEWAY, CHANGE, user_id="nobody01", address=NEW, link_base_url=BASE
        ),
    )
    await _refused(
        ErrorReason.INVALID_ARGUMENT,
        services.email.request(
            PORTAL, REGISTRATION, user_id="taro0001", address=NEW, link_base_url=BASE
        ),
    )
    assert _link_mails(services, NEW) == []


async def test_the_operator_changes_an_address_as_the_operator(services: Services) -> None:
    await services.new_user()
    await services.email.request(
        OPERATOR, CHANGE, user_id="taro0001", address=NEW, link_base_url=BASE
    )
    await services.email.confirm(GATEWAY, _token(_link_mails(services, NEW)[0]))
    request, change = services.stores.journal.audit[-2:]
    assert (request.actor, change.actor) == ("operator", "taro0001")


@pytest.mark.parametrize(
    ("caller", "purpose"),
    [(PORTAL, CHANGE), (SERVICE, CHANGE), (GATEWAY, REGISTRATION), (OPERATOR, REGISTRATION)],
)
async def test_roles_use_only_their_purposes(
    services: Services, caller: Caller, purpose: VerificationPurpose
) -> None:
    await services.new_user()
    await _refused(
        ErrorReason.PERMISSION_DENIED,
        services.email.request(
            caller,
            purpose,
            user_id="taro0001" if purpose is CHANGE else "",
            address=NEW,
            link_base_url=BASE,
        ),
    )


async def test_another_purposes_link_is_unknown_to_the_caller_and_stays_unused(
    services: Services,
) -> None:
    await services.new_user()
    change = await _request_change(services)
    await _refused(ErrorReason.EMAIL_LINK_UNKNOWN, services.email.confirm(PORTAL, change))
    await _refused(
        ErrorReason.EMAIL_LINK_UNKNOWN, services.email.confirm(PORTAL, change, check_only=True)
    )
    await services.email.request(
        PORTAL, REGISTRATION, user_id="", address="hanako@example.jp", link_base_url=BASE
    )
    registration = _token(_link_mails(services, "hanako@example.jp")[0])
    await _refused(ErrorReason.EMAIL_LINK_UNKNOWN, services.email.confirm(GATEWAY, registration))
    # Both still work for their own callers.
    await services.email.confirm(GATEWAY, change)
    verified = await services.email.confirm(PORTAL, registration)
    assert (verified.purpose, verified.address, verified.user_id) == (
        REGISTRATION,
        "hanako@example.jp",
        None,
    )


async def test_portal_registration(services: Services) -> None:
    await services.email.request(
        PORTAL,
        REGISTRATION,
        user_id="",
        address="hanako@example.jp",
        link_base_url="https://portal.example.jp/procedures/verify",
    )
    (mail,) = _link_mails(services, "hanako@example.jp")
    assert mail.subject == "【オンライン手続きポータル】メール認証URLのご案内"
    assert mail.body.startswith("ご利用いただきまして誠にありがとうございます。")
    token = _token(mail, "https://portal.example.jp/procedures/verify")
    await services.email.confirm(PORTAL, token)
    await _refused(ErrorReason.EMAIL_LINK_USED, services.email.confirm(PORTAL, token))
    assert services.stores.journal.audit == []  # no CA account changed


async def test_completion_mail_once_per_receipt_number(services: Services) -> None:
    submitted = services.clock.now()
    send = services.email.send_completion
    number = "S0101-20261121100000-00001"
    assert await send(
        PORTAL, address="hanako@example.jp", receipt_number=number, submitted_at=submitted
    )
    assert not await send(
        PORTAL, address="hanako@example.jp", receipt_number=number, submitted_at=submitted
    )
    (mail,) = services.stores.journal.mail_to("hanako@example.jp")
    assert mail.subject == "【オンライン手続きポータル】オンライン申請受付完了のお知らせ"
    assert f"受付番号：{number}" in mail.body
    await _refused(
        ErrorReason.INVALID_ARGUMENT,
        send(PORTAL, address="hanako@example.jp", receipt_number="S01", submitted_at=submitted),
    )
    await _refused(
        ErrorReason.PERMISSION_DENIED,
        send(GATEWAY, address="hanako@example.jp", receipt_number=number, submitted_at=submitted),
    )
