"""The demo's mail sink (``ca-mailsink``, run by ``stack.py up``): a real process receiving
the CA's real messages over SMTP (aiosmtplib, as the outbox worker sends them). The terminal
line names the recipient and the subject and, for a code mail, the code; beside the .eml as
received lies a .txt that ``cat`` shows in plain Japanese."""

from __future__ import annotations

import asyncio
import email
import email.policy
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from ca_service.adapters.mail import templates
from ca_service.adapters.mail.outbox import ClaimedMail
from ca_service.adapters.mail.worker import build_message
from ca_service.domain.validity import JAPAN
from tests.support import free_port, tool

SENDER = "noreply@ca.example.jp"
CREATED = datetime(2027, 11, 21, 22, 21, 5, tzinfo=JAPAN)


class _Sink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process = subprocess.Popen(
            [tool("ca-mailsink"), "--dir", str(directory), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.stdout = self.process.stdout
        assert "ca-mailsink: SMTP on" in self.stdout.readline()

    def send(self, recipient: str, subject: str, body: str, row: int) -> str:
        """Sends one outbox row as the worker would; returns the line the sink printed."""
        mail = ClaimedMail(row, "code", recipient, subject, body, 0, CREATED)
        message = build_message(mail, SENDER)
        asyncio.run(aiosmtplib.send(message, hostname="127.0.0.1", port=self.port, timeout=10))
        return self.stdout.readline().rstrip("\n")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[_Sink]:
    started = _Sink(tmp_path / "mail")
    yield started
    started.process.send_signal(signal.SIGTERM)
    assert started.process.wait(10) == 0
    started.stdout.close()


def test_a_code_mail_is_announced_with_its_code_and_saved_readable(sink: _Sink) -> None:
    subject, body = templates.authentication_code(
        "master01", "048213", datetime(2027, 11, 21, 22, 51, tzinfo=JAPAN)
    )
    line = sink.send("master01@example.jp", subject, body, row=1)
    assert line.startswith("master01@example.jp 認証コード 048213  「" + subject + "」 ("), line

    (raw,) = sink.directory.glob("*.eml")
    (readable,) = sink.directory.glob("*.txt")
    assert raw.with_suffix(".txt") == readable
    assert str(readable) in line
    # The .eml is what arrived: the worker's base64 UTF-8 body, which cat cannot show.
    assert b"Content-Transfer-Encoding: base64" in raw.read_bytes()
    assert "認証コード".encode() not in raw.read_bytes()
    parsed = email.message_from_bytes(raw.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content() == body
    # The .txt is plain UTF-8: headers and the decoded body.
    text = readable.read_text(encoding="utf-8")
    assert f"Subject: {subject}\n" in text
    assert "To: master01@example.jp\n" in text
    assert text.endswith("\n\n" + body)
    assert "認証コード：048213" in text
    assert (raw.stat().st_mode & 0o777, readable.stat().st_mode & 0o777) == (0o600, 0o600)


def test_other_mails_are_announced_by_subject_without_a_code(sink: _Sink) -> None:
    subject, body = templates.locked("general7", datetime(2027, 11, 21, 23, 21, tzinfo=JAPAN))
    line = sink.send("general7@example.jp", subject, body, row=2)
    assert line.startswith(f"general7@example.jp  「{subject}」 ("), line
    assert "認証コード" not in line
    subject, body = templates.unlocked("general7")
    line = sink.send("general7@example.jp", subject, body, row=3)
    assert f"「{subject}」" in line
    assert len(list(sink.directory.glob("*.eml"))) == len(list(sink.directory.glob("*.txt"))) == 2
