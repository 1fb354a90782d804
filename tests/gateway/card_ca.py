"""The test identity card CA (SPEC D2) for the gateway tests: the one of ``stack.py up``
(``ca_service.devtools.card_ca``: its certificates in the JPKI signing certificate profile,
its revocations, its CRL and CRL server), held by a test: the CRL is made anew on every GET
(numbered 1, 2, … so a newer one always wins; its lifetime chosen by the test) and served by
a thread of this process, which can be stopped and started again on its port."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from ca_service.devtools import card_ca as devtools
from ca_service.devtools.card_ca import CardHolder
from ca_service.shared.http.server import HttpServer
from tests.gateway.curl import Client
from tests.gateway.gateway_stack import GatewayStack, Process
from tests.support import free_port

__all__ = ["HOLDER", "CardCa", "CardHolder", "start_card_gateway"]

HOLDER = CardHolder("共済 太郎", "東京都港区虎ノ門3-5-1", "1990-01-02", "1")


class CardCa:
    def __init__(
        self,
        directory: Path,
        *,
        crl_lifetime: timedelta = timedelta(hours=1),
        name: str = "Test Signing CA",
        subject: x509.Name | None = None,
    ) -> None:
        self.ca = devtools.make_card_ca(directory, name=name, subject=subject)
        self.certificate = self.ca.certificate()
        self.name = self.certificate.subject
        self.trust = self.ca.certificate_path
        self.crl_lifetime = crl_lifetime
        self.crl_number = 0
        self.crl_requests = 0
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: HttpServer | None = None
        self._thread: threading.Thread | None = None

    def issue(
        self,
        directory: Path,
        holder: CardHolder = HOLDER,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        signing: bool = True,
    ) -> Path:
        """An identity certificate (cert.pem, key.pem, card.p12 in ``directory``)."""
        return devtools.issue(
            self.ca, holder, directory, not_before=not_before, not_after=not_after, signing=signing
        )

    def revoke(self, certificate_dir: Path) -> None:
        devtools.revoke(self.ca, (certificate_dir / "cert.pem").read_bytes())

    # -- the CRL and its server ---------------------------------------------------------------

    @property
    def crl_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/crl"

    def crl(self) -> bytes:
        self.crl_number += 1
        return devtools.sign_crl(self.ca, number=self.crl_number, lifetime=self.crl_lifetime)

    def _served_crl(self) -> bytes:
        self.crl_requests += 1
        return self.crl()

    def start(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, daemon=True)
        self._thread.start()
        serving = devtools.serve_crl(self.ca, "127.0.0.1", self.port, crl=self._served_crl)
        self._server, _ = asyncio.run_coroutine_threadsafe(serving, loop).result(10)

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(10)
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._loop.close()
        self._loop = None


def start_card_gateway(
    stack: GatewayStack,
    card_ca: CardCa,
    *,
    upstream: str | None = None,
    name: str = "card-gateway",
    **extra: str,
) -> Process:
    """A gateway of ``stack`` with the procedure portal's routes (``/procedures/`` public,
    ``/procedures/card/`` card) on ``upstream`` (default: the stack's sample upstream),
    trusting ``card_ca``; returned once its first card CRL is held (health "ok")."""
    upstream = upstream or f"http://127.0.0.1:{stack.upstream.port}"
    gateway = stack.start_gateway(
        name,
        **{
            "GATEWAY_ROUTES": f"/procedures/ public {upstream}, /procedures/card/ card {upstream}",
            "GATEWAY_CARD_TRUST": str(card_ca.trust),
            "GATEWAY_CARD_CRL_URLS": card_ca.crl_url,
            **extra,
        },
    )
    url = f"https://localhost:{gateway.port}"
    for _ in range(100):
        status, _, body = Client(stack, stack.tmp)("/-/health", url=url)
        if status == 200 and json.loads(body)["status"] == "ok":
            break
        time.sleep(0.1)
    return gateway
