"""The outbox worker: claims due mail, sends it over SMTP (aiosmtplib), records the outcome.

Delivery is at least once: a worker that dies between the SMTP answer and the 'sent'
record leaves a row whose lease runs out and which is sent again. The Message-ID is
derived from the outbox row, so such a rare second copy is recognisable as the same mail.

Logs name the row id, kind and error class, never a body, code or password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from ca_service.adapters.mail.outbox import (
    ClaimedMail,
    claim,
    describe_error,
    expire,
    mark_failed,
    mark_sent,
)
from ca_service.adapters.sql.database import Cursor, Database
from ca_service.domain.validity import JAPAN
from ca_service.errors import StoreError
from ca_service.ports import Clock

__all__ = ["MailDelivery", "build_message", "message_id"]

log = logging.getLogger(__name__)


def message_id(mail: ClaimedMail, sender: str) -> str:
    """``<outbox.ID.CREATED@sender-domain>``: the same for every attempt at one row, and
    (with the creation second) distinct from rows of another database that reused the id."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<outbox.{mail.id}.{int(mail.created_at.timestamp())}@{domain}>"


def build_message(mail: ClaimedMail, sender: str) -> EmailMessage:
    """The RFC 5322 message for ``mail``: UTF-8 plain text, Japanese subject encoded."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    # The Date is when the mail was queued (RFC 5322 3.6.1: when it was ready to send),
    # in Japan time for the readers, so that a retried mail still shows when it was made.
    message["Date"] = format_datetime(mail.created_at.astimezone(JAPAN))
    message["Message-ID"] = message_id(mail, sender)
    message.set_content(mail.body, subtype="plain", charset="utf-8")
    return message


@dataclass(frozen=True, slots=True)
class _Round:
    claimed: int
    sent: int


class MailDelivery:
    """Delivers the outbox of ``database`` through one SMTP server.

    ``starttls``: None upgrades when the server offers STARTTLS, True requires it, False
    never upgrades. ``use_tls``: implicit TLS from the first byte (port 465). Several
    instances, in one process or many, may run against one database: rows are leased.
    """

    def __init__(
        self,
        database: Database,
        host: str,
        port: int,
        sender: str,
        *,
        clock: Clock,
        username: str | None = None,
        password: str | None = None,
        starttls: bool | None = None,
        use_tls: bool = False,
        tls_context: ssl.SSLContext | None = None,
        worker_id: str | None = None,
        batch_size: int = 10,
        poll_interval: float = 5.0,
        timeout: float = 30.0,
        max_attempts: int = 50,
        lease: timedelta = timedelta(minutes=10),
    ) -> None:
        if batch_size < 1 or max_attempts < 1 or poll_interval <= 0 or timeout <= 0:
            raise ValueError("batch_size, max_attempts, poll_interval and timeout must be > 0")
        if use_tls and starttls:
            raise ValueError("use_tls and starttls exclude each other")
        # The lease must outlast a whole batch even when every send runs into the timeout,
        # or another worker could take over rows this one is still sending.
        if lease.total_seconds() <= timeout * (batch_size + 1):
            raise ValueError("lease must be longer than timeout * (batch_size + 1)")
        self._database = database
        self._host = host
        self._port = port
        self._sender = sender
        self._clock = clock
        self._username = username
        self._password = password
        self._starttls = starttls
        self._use_tls = use_tls
        self._tls_context = tls_context
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._lease = lease
        self._wakeup = asyncio.Event()

    async def run_once(self) -> int:
        """One round: expire dead mail, claim a batch, send it. Returns how many were sent."""
        return (await self._round()).sent

    async def run(self, stop: asyncio.Event) -> None:
        """Delivers until ``stop`` is set; an error in one round only delays the next."""
        while not stop.is_set():
            try:
                result = await self._round()
            except StoreError:
                result = _Round(0, 0)  # the outage is logged once, by the store's availability
            except Exception as exc:
                log.warning("mail delivery round failed: %s", describe_error(exc))
                result = _Round(0, 0)
            if result.claimed >= self._batch_size and result.sent:
                # A full batch went out: more may be due now. (After a failed batch, wait:
                # hammering a server that is down would only churn the backlog.)
                continue
            await self._idle(stop)

    def wake(self) -> None:
        """Mail was just queued by this process: deliver it now rather than at the next
        poll (an authentication code should not wait for a timer)."""
        self._wakeup.set()

    async def _idle(self, stop: asyncio.Event) -> None:
        stopped = asyncio.ensure_future(stop.wait())
        woken = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait(
                {stopped, woken}, timeout=self._poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
            woken.cancel()
            self._wakeup.clear()

    async def _round(self) -> _Round:
        now = self._clock.now()
        expired = await self._database.write(lambda cursor: expire(cursor, now))
        if expired:
            log.warning("%d queued mails expired before they could be delivered", expired)
        batch = await self._database.write(
            lambda cursor: claim(cursor, self.worker_id, now, self._batch_size, self._lease)
        )
        if not batch:
            return _Round(0, 0)
        return _Round(len(batch), await self._deliver(batch))

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._use_tls,
            start_tls=self._starttls,
            tls_context=self._tls_context,
            timeout=self._timeout,
        )

    async def _deliver(self, batch: list[ClaimedMail]) -> int:
        smtp = self._client()
        try:
            await smtp.connect()
        except Exception as exc:
            # The server is unreachable: every mail of the batch failed this attempt.
            await self._failed(batch, exc)
            return 0
        sent = 0
        try:
            for index, mail in enumerate(batch):
                try:
                    await smtp.send_message(
                        build_message(mail, self._sender),
                        sender=self._sender,
                        recipients=[mail.recipient],
                    )
                except Exception as exc:
                    if smtp.is_connected:
                        await self._failed([mail], exc)
                        continue
                    # The connection is gone; the rest cannot be sent in this round.
                    await self._failed(batch[index:], exc)
                    break
                await self._sent(mail)
                sent += 1
        finally:
            if smtp.is_connected:
                with contextlib.suppress(Exception):
                    await smtp.quit()
        return sent

    async def _sent(self, mail: ClaimedMail) -> None:
        now = self._clock.now()
        try:
            recorded = await self._database.write(lambda cursor: mark_sent(cursor, mail.id, now))
        except Exception as exc:
            # The mail is out but not recorded: after the lease it will be sent once more,
            # under the same Message-ID.
            log.error(
                "mail %d (%s) was sent but not recorded: %s",
                mail.id,
                mail.kind,
                describe_error(exc),
            )
            return
        if not recorded:
            log.warning("mail %d (%s) was sent after it stopped being pending", mail.id, mail.kind)

    async def _failed(self, mails: Sequence[ClaimedMail], error: BaseException) -> None:
        now = self._clock.now()
        text = describe_error(error)

        def record(cursor: Cursor) -> list[str | None]:
            return [
                mark_failed(cursor, mail, self.worker_id, text, now, self._max_attempts)
                for mail in mails
            ]

        statuses = await self._database.write(record)
        for mail, status in zip(mails, statuses, strict=True):
            if status == "failed":
                log.error(
                    "mail %d (%s) given up after %d attempts: %s",
                    mail.id,
                    mail.kind,
                    mail.attempts + 1,
                    text,
                )
            else:
                log.warning(
                    "mail %d (%s) attempt %d failed: %s",
                    mail.id,
                    mail.kind,
                    mail.attempts + 1,
                    text,
                )
