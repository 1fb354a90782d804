"""The completion mail is handed to the CA at least once: a submission whose mail the CA
could not take (it is unreachable) stays pending and goes when the CA answers again; the
CA queues one mail per receipt number however often it is asked."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ca_service.adapters.keystore import CaFiles
from ca_service.adapters.sql.database import open_database
from ca_service.client import aio_secure_channel
from ca_service.shared.clock import SystemClock
from gateway.portal.app import CompletionMails
from gateway.portal.ca import GrpcPortalCa
from gateway.portal.card import Card
from gateway.portal.errors import PortalUnavailable
from gateway.portal.store import PortalStore
from tests.support import CaProcess, free_port, run, tool

CARD = Card("cd" * 32, "共済 花子", "大阪府", "1985-01-02", "2")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[PortalStore]:
    store = PortalStore(open_database(f"sqlite:///{tmp_path / 'portal.db'}"))
    store.migrate()
    yield store
    store.close()


async def test_an_unreachable_ca_leaves_the_mail_pending_until_it_answers(
    store: PortalStore, ca_server: CaProcess, tmp_path: Path
) -> None:
    name = f"portal-{uuid.uuid4().hex[:8]}"
    run([tool("ca-service"), "credential", "--name", name, "--role", "portal"], ca_server.env)
    credential = CaFiles(ca_server.data_dir).client_credential(name)
    now = datetime.now(UTC)
    _, session = await store.create_session("hanako@test.example.jp", now, timedelta(hours=1))
    await store.confirm_identity(session)
    await store.save_draft(session, "", "S0101-20230101102030-12345")
    await store.stage_files(
        session, [("a.png", "image/png", 10, "0" * 64, "/x")], now, lambda _: None
    )
    receipt, _ = await store.submit(session, await store.freeze_draft(session), CARD, now)

    nowhere = aio_secure_channel(f"127.0.0.1:{free_port()}", credential)
    try:
        with pytest.raises(PortalUnavailable):
            await CompletionMails(
                store, GrpcPortalCa(nowhere, timeout=2), SystemClock()
            ).send_pending()
    finally:
        await nowhere.close(None)
    assert [r for r, _, _ in await store.unmailed()] == [receipt]

    channel = aio_secure_channel(ca_server.address, credential)
    try:
        ca = GrpcPortalCa(channel)
        assert await CompletionMails(store, ca, SystemClock()).send_pending() == 1
        assert await store.unmailed() == []
        # Asked again (a crash between the CA's answer and our mark): still one mail.
        await ca.send_completion_mail("hanako@test.example.jp", receipt, now)
        assert await ca.link_validity_text() == "24時間"
    finally:
        await channel.close(None)
