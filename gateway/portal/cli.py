"""``ca-portal``: the procedure portal (SPEC D1–D3), an upstream application of the gateway.

ca-portal serve             run (plain HTTP on a loopback/private address; the gateway
                            terminates TLS and routes <mount> and <mount>card/ here)
ca-portal config-reference  the settings table (Markdown)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from ca_service.adapters.sql.database import open_database
from ca_service.client import aio_secure_channel
from ca_service.errors import CAError
from ca_service.shared.cli import configure_logging, fail
from ca_service.shared.clock import Clock, SystemClock
from ca_service.shared.credentials import load_credential
from ca_service.shared.errors import ConfigError
from ca_service.shared.net.admission import Admission
from ca_service.shared.net.guard import ConnectionGuard
from gateway.errors import GatewayConfigurationError
from gateway.portal.app import Portal
from gateway.portal.ca import GrpcPortalCa
from gateway.portal.card import CardHeaders
from gateway.portal.config import PortalSettings, configuration_reference, load_settings
from gateway.portal.store import PortalStore
from gateway.server import HttpServer

__all__ = ["main", "orphans", "serve"]

log = logging.getLogger("ca-portal")

# How often sessions past their end (and their unsubmitted files) are swept, and how old an
# unrecorded file must be to count as left by a crash (far longer than any upload takes).
_SWEEP_SECONDS = 60.0
_ORPHAN_AGE = 3600.0


def _unlink(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()


def _storage(directory: str) -> Path:
    storage = Path(directory)
    storage.mkdir(parents=True, exist_ok=True)
    return storage


def orphans(storage: Path, referenced: set[str], older_than: float) -> list[Path]:
    """Files in ``storage`` that no row names and that were last written before
    ``older_than`` (a POSIX time): left by a crash between writing a file and recording it.
    Younger ones may be an upload of another process still on its way."""
    return [
        path
        for path in storage.iterdir()
        if path.is_file() and str(path) not in referenced and path.stat().st_mtime < older_than
    ]


async def _sweep(store: PortalStore, clock: Clock, storage: Path) -> None:
    while True:
        try:
            _unlink(await store.expired_sessions(clock.now()))
            cutoff = clock.now().timestamp() - _ORPHAN_AGE
            found = await asyncio.to_thread(
                orphans, storage, await store.referenced_paths(), cutoff
            )
            if found:
                log.warning("removing %d stored files no draft or submission names", len(found))
                _unlink([str(path) for path in found])
        except (CAError, OSError) as exc:
            log.warning("sweeping expired sessions failed: %s", exc)
        await asyncio.sleep(_SWEEP_SECONDS)


async def serve(settings: PortalSettings) -> None:
    try:
        credential = load_credential(Path(settings.ca_credential_dir))
    except ConfigError as exc:
        raise GatewayConfigurationError(str(exc)) from None
    storage = _storage(settings.storage_dir)
    store = PortalStore(open_database(settings.database_url))
    store.migrate()
    channel = aio_secure_channel(settings.ca_address, credential, settings.ca_server_name or None)
    clock = SystemClock()
    portal = Portal(
        store=store,
        ca=GrpcPortalCa(channel),
        clock=clock,
        storage_dir=storage,
        public_url=settings.public_url,
        mount=settings.mount,
        card_headers=CardHeaders(
            name=settings.header_card_name.lower(),
            address=settings.header_card_address.lower(),
            birth_date=settings.header_card_birth_date.lower(),
            sex=settings.header_card_sex.lower(),
            fingerprint=settings.header_card_fingerprint.lower(),
        ),
        session_lifetime=timedelta(seconds=settings.session_seconds),
        site_name=settings.site_name,
        registrations_per_hour=settings.registrations_per_hour,
    )
    guard = ConnectionGuard(Admission(10_000, 30.0), name="ca-portal")
    server = HttpServer(portal.handle, guard=guard, error_page=portal.error_page)
    host, port = settings.listen
    bound = await server.start(host, port)
    tasks = [
        asyncio.create_task(portal.mails.run(), name="completion-mails"),
        asyncio.create_task(_sweep(store, clock, storage), name="session-sweep"),
    ]
    print(f"ca-portal: listening on http://{host}:{bound}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close(None)
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ca-portal", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the portal")
    commands.add_parser("config-reference", help="print the settings table (Markdown)")
    args = parser.parse_args(argv)
    if args.command == "config-reference":
        print(configuration_reference())
        return 0
    try:
        settings = load_settings()
    except GatewayConfigurationError as exc:
        fail("ca-portal", str(exc))
    configure_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except (GatewayConfigurationError, CAError) as exc:
        fail("ca-portal", str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
