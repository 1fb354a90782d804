"""The procedure portal behind a real gateway, as the tests drive it: a CA (SQLite, Redis,
the SMTP sink), the stand-in identity card CA with its CRL server, ``ca-portal`` with the
``portal`` credential, the sample upstream, and ``ca-gateway`` routing ``/procedures/``
(mode ``public``) and ``/procedures/card/`` (mode ``card``) to the portal."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from ca_service.devtools.card_ca import CardCa, CardHolder, issue, make_card_ca
from tests.gateway.gateway_stack import GatewayStack, Process, gateway_stack_on
from tests.smtp_sink import SmtpSink
from tests.stack_support import start_stack
from tests.support import free_port, run, tool

__all__ = ["HOLDER", "MOUNT", "PortalStack", "link_in", "start_portal_stack"]

MOUNT = "/procedures/"
HOLDER = CardHolder("共済 太郎", "東京都港区虎ノ門3-5-1", "1990-04-01", "1")
_LINK = re.compile(r"https?://\S+/procedures/verify\?token=[A-Za-z0-9_\-]+")


def link_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = _LINK.search(body.get_content())
    assert match, body.get_content()
    return match.group(0)


@dataclass
class PortalStack:
    gateway: GatewayStack
    portal: Process
    card_crl: Process
    card_ca: CardCa
    tmp: Path

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def trust(self) -> Path:
        return self.gateway.trust

    @property
    def smtp(self) -> SmtpSink:
        return self.gateway.smtp

    @property
    def storage(self) -> Path:
        return self.tmp / "portal" / "files"

    @property
    def portal_database(self) -> Path:
        return self.tmp / "portal" / "portal.sqlite3"

    def card(self, name: str, holder: CardHolder = HOLDER, p12_password: str = "") -> Path:
        """A new identity certificate (cert.pem, key.pem, card.p12) of the test card CA."""
        return issue(self.card_ca, holder, self.tmp / "cards" / name, p12_password=p12_password)

    def registration_mails(self, address: str) -> list[EmailMessage]:
        return [m for m in self.smtp.to(address) if "メール認証URL" in str(m["Subject"])]

    def wait_for_link(self, address: str, count: int = 1) -> str:
        found = self.smtp.wait_for(
            lambda m: m["To"] == address and "メール認証URL" in str(m["Subject"]), count=count
        )
        return link_in(found[-1])

    def wait_for_completion(self, address: str) -> EmailMessage:
        return self.smtp.wait_for(
            lambda m: m["To"] == address and "オンライン申請受付完了" in str(m["Subject"])
        )[-1]

    def expire_links(self, address: str) -> int:
        """Ages the CA's unused links to ``address`` by their whole validity: each looks
        made one validity earlier and ends now, as if 24 hours had passed (the CA's own clock
        then finds it expired)."""
        with sqlite3.connect(self.gateway.ca.data_dir / "ca.db") as connection:
            changed = connection.execute(
                "UPDATE email_verifications"
                " SET created_at = 2 * created_at - expires_at, expires_at = created_at"
                " WHERE address = ? AND used_at IS NULL",
                (address,),
            ).rowcount
        return changed

    def wait_until_healthy(self, timeout: float = 20) -> None:
        """Until the gateway says "ok": among others, it holds the card CA's first CRL (a
        card route refuses with 503 before)."""
        from tests.gateway.curl import Client

        client = Client(self.gateway, self.tmp)
        deadline = time.monotonic() + timeout
        while True:
            status, _, body = client("/-/health")
            if status == 200 and json.loads(body)["status"] == "ok":
                return
            assert time.monotonic() < deadline, body
            time.sleep(0.1)

    def wait_until_refused(self, card: Path, timeout: float = 15) -> str:
        """Polls a card page with ``card`` until the gateway refuses it (its card CRL is
        fetched every second); the refusal page."""
        from tests.gateway.curl import Client

        client = Client(self.gateway, card, cert=card)
        deadline = time.monotonic() + timeout
        while True:
            status, _, page = client(MOUNT + "card/")
            if status == 403 or time.monotonic() > deadline:
                assert status == 403, page
                return page
            time.sleep(0.3)

    def portal_rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.portal_database) as connection:
            return connection.execute(sql, args).fetchall()

    def stop(self) -> None:
        self.gateway.stop()
        self.portal.stop()
        self.card_crl.stop()


def start_portal_stack(
    tmp: Path, redis_url: str, smtp: SmtpSink, *, database_url: str | None = None
) -> PortalStack:
    """``database_url``: the portal's database (default: SQLite in ``tmp``)."""
    ca = start_stack(tmp, redis_url, smtp, count=1)
    processes: list[Process] = []
    try:
        run([tool("ca-service"), "credential", "--name", "portal", "--role", "portal"], ca.env)
        card_ca = make_card_ca(tmp / "card-ca")
        card_crl = Process(
            [tool("ca-test-card-ca"), "serve", str(card_ca.directory)],
            dict(ca.env),
            tmp / "card-crl.log",
        ).start()
        processes.append(card_crl)
        gateway_port = free_port()
        portal = Process(
            [tool("ca-portal"), "serve"],
            dict(
                ca.env,
                PORTAL_LISTEN="127.0.0.1:0",
                PORTAL_PUBLIC_URL=f"https://localhost:{gateway_port}{MOUNT}",
                PORTAL_DATABASE_URL=database_url
                or f"sqlite:///{tmp / 'portal' / 'portal.sqlite3'}",
                PORTAL_STORAGE_DIR=str(tmp / "portal" / "files"),
                PORTAL_CA_ADDRESS=ca.servers[0].address,
                PORTAL_CA_CREDENTIAL_DIR=str(ca.data_dir / "credentials" / "portal"),
            ),
            tmp / "portal.log",
        ).start()
        processes.append(portal)
        stack = gateway_stack_on(ca, smtp, tmp)
        portal_url = f"http://127.0.0.1:{portal.port}"
        try:
            stack.start_gateway(
                GATEWAY_LISTEN=f"127.0.0.1:{gateway_port}",
                GATEWAY_ROUTES=f"{MOUNT} public {portal_url}, {MOUNT}card/ card {portal_url}",
                GATEWAY_CARD_TRUST=str(card_ca.certificate_path),
                GATEWAY_CARD_CRL_URLS=f"http://127.0.0.1:{card_crl.port}/crl",
                GATEWAY_CARD_CRL_REFRESH="1",
            )
        except BaseException:
            stack.stop()
            raise
    except BaseException:
        for process in processes:
            process.stop()
        for server in ca.servers:
            server.stop()
        raise
    portal_stack = PortalStack(stack, portal, card_crl, card_ca, tmp)
    try:
        portal_stack.wait_until_healthy()
    except BaseException:
        portal_stack.stop()
        raise
    return portal_stack
