"""The tests' one SMTP server: a real aiosmtpd that keeps every message it receives (the
envelope and the parsed message) and can be stopped and started again on its port."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support import free_port

__all__ = ["Received", "SmtpSink", "code_from", "is_code_mail"]


@dataclass(frozen=True)
class Received:
    """One accepted message as it came: the envelope and the raw bytes."""

    sender: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Collector:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        with self._sink.lock:
            self._sink.received.append(received)
            self._sink.messages.append(received.message)
        return "250 OK"


class SmtpSink:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        assert self._controller is None, "already running"
        self._controller = Controller(_Collector(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(message["Message-ID"]) for message in self.messages]

    def to(self, recipient: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if recipient in str(m["To"])]

    def code_mails(self, recipient: str) -> list[EmailMessage]:
        """The authentication code mails to ``recipient`` so far."""
        with self.lock:
            return [m for m in self.messages if is_code_mail(recipient)(m)]

    def wait_for_code(self, recipient: str, before: int) -> str:
        """The code of the next code mail to ``recipient`` after ``before`` of them."""
        return code_from(self.wait_for(is_code_mail(recipient), count=before + 1)[-1])

    def wait_for(
        self, predicate: Callable[[EmailMessage], bool], timeout: float = 15, count: int = 1
    ) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [m for m in self.messages if predicate(m)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"expected {count} matching mail within {timeout} s, got "
            f"{len(found)}; all: {[str(m['Subject']) for m in self.messages]}"
        )


def is_code_mail(recipient: str) -> Callable[[EmailMessage], bool]:
    """Whether a mail is an authentication code (SPEC B1) sent to ``recipient``."""
    return lambda message: (
        recipient in str(message["To"]) and "認証コード" in str(message["Subject"])
    )


def code_from(message: EmailMessage) -> str:
    body = message.get_content()
    match = re.search(r"(?<!\d)(\d{6})(?!\d)", body)
    assert match, body
    return match.group(1)
