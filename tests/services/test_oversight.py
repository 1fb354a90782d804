"""What the operator reads back through the API (ListMail, ListAudit, VerifyAudit): the
limits and the status check, on in-memory ports."""

from __future__ import annotations

import pytest

from ca_service.domain.accounts import AuditAction, AuditEntry
from ca_service.domain.mail import MailKind, OutgoingMail
from ca_service.errors import CAError
from ca_service.services.oversight import AuditTrail, MailListing
from tests.fakes import START, Journal, MemoryAudit


def _journal(mails: int) -> Journal:
    journal = Journal()
    journal.write(
        [],
        [OutgoingMail(MailKind.UNLOCKED, f"u{n}@example.jp", "s", "b") for n in range(mails)],
        START,
    )
    return journal


async def test_mail_listing_checks_the_status_and_caps_the_page() -> None:
    listing = MailListing(_journal(1200))
    assert len(await listing.list()) == 100
    assert len(await listing.list(limit=5000)) == 1000
    assert [row.recipient for row in await listing.list(limit=2)] == [
        "u1199@example.jp",
        "u1198@example.jp",
    ]
    assert await listing.list(status="sent") == []
    with pytest.raises(CAError) as caught:
        await listing.list(status="bounced")
    assert caught.value.message == "status must be pending, sent, failed or expired"
    assert caught.value.metadata == {"field": "status"}


async def test_audit_trail_filters_and_verifies() -> None:
    journal = Journal()
    journal.write(
        [AuditEntry(START, "operator", AuditAction.UNLOCK, f"u{n % 3}", {}) for n in range(30)],
        [],
        START,
    )
    trail = AuditTrail(MemoryAudit(journal))
    assert len(await trail.list()) == 30
    assert len(await trail.list(user_id="u1")) == 10
    assert await trail.list(action="revoke") == []
    assert await trail.verify() == (30, None, "")
