"""The portal's health check (``GET /-/health``, the Kubernetes readiness probe): 200 while
its database answers and its files' directory is writable, 503 naming the part that is not;
served on the portal's own port, never under its mount."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from ca_service.adapters.sql.database import open_database
from ca_service.shared.clock import SystemClock
from ca_service.shared.net.admission import Admission
from ca_service.shared.net.guard import ConnectionGuard
from gateway.portal.app import HEALTH_PATH, Portal
from gateway.portal.card import CardHeaders
from gateway.portal.store import PortalStore
from gateway.server import HttpServer

MOUNT = "/procedures/"


class _NoCa:
    """The health check asks the CA nothing; any call is a failure of this test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the health check called the CA ({name})")


def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        return int(error.code), json.loads(body) if body.startswith(b"{") else {}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[int, PortalStore, Path]]:
    store = PortalStore(open_database(f"sqlite:///{tmp_path / 'portal.db'}"))
    store.migrate()
    storage = tmp_path / "files"
    storage.mkdir()
    portal = Portal(
        store=store,
        ca=_NoCa(),  # type: ignore[arg-type]
        clock=SystemClock(),
        storage_dir=storage,
        public_url="https://portal.example.jp" + MOUNT,
        mount=MOUNT,
        card_headers=CardHeaders("x-a", "x-b", "x-c", "x-d", "x-e"),
        session_lifetime=timedelta(hours=1),
        site_name="test",
    )
    guard = ConnectionGuard(Admission(100, 30.0), name="test")
    server = HttpServer(portal.handle, guard=guard, error_page=portal.error_page)
    port = await server.start("127.0.0.1", 0)
    yield port, store, storage
    await server.stop()
    store.close()


async def test_ready_while_the_database_answers_and_the_files_directory_is_writable(
    served: tuple[int, PortalStore, Path],
) -> None:
    port, store, storage = served
    assert await asyncio.to_thread(_get, port, HEALTH_PATH) == (
        200,
        {"status": "ok", "database": True, "storage": True},
    )
    # Only GET, only that path: under the mount it is a page like any other.
    assert (await asyncio.to_thread(_get, port, MOUNT + "-/health"))[0] == 404

    # The files' directory gone (a volume not mounted): not ready.
    storage.rename(storage.with_name("away"))
    try:
        status, body = await asyncio.to_thread(_get, port, HEALTH_PATH)
        assert (status, body["storage"], body["database"]) == (503, False, True)
    finally:
        storage.with_name("away").rename(storage)
    assert (await asyncio.to_thread(_get, port, HEALTH_PATH))[0] == 200

    store.close()
    assert await asyncio.to_thread(_get, port, HEALTH_PATH) == (
        503,
        {"status": "unavailable", "database": False, "storage": True},
    )
