"""``ca-mailsink``: a local SMTP server that keeps every message, so that a demo user can
read the codes and notices the CA sends (``python3 stack.py up`` runs it).

Each message is kept twice: the ``.eml`` exactly as received (base64 UTF-8 body, for a
mail program) and a ``.txt`` beside it with the headers and the decoded body (for ``cat``).
Each is announced on one line: the recipient and the subject, and for an authentication
code mail the code itself, e.g. ``master01@example.jp 認証コード 123456 (…)``."""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import itertools
import os
import re
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from ca_service.adapters.mail.templates import CODE_LINE
from ca_service.domain.codes import CODE_DIGITS

__all__ = ["Announcement", "announce", "main", "readable_text"]

_CODE = re.compile(rf"^{re.escape(CODE_LINE)}\s*(\d{{{CODE_DIGITS}}})\s*$", re.M)
_SHOWN_HEADERS = ("Date", "From", "To", "Subject", "Message-ID")


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else ""


def readable_text(message: EmailMessage) -> str:
    """The headers a reader wants and the decoded body, as UTF-8 text."""
    headers = [f"{name}: {message[name]}" for name in _SHOWN_HEADERS if message[name]]
    return "\n".join(headers) + "\n\n" + _body(message)


@dataclass(frozen=True, slots=True)
class Announcement:
    recipients: str
    subject: str
    code: str | None

    def line(self, saved: Path) -> str:
        code = f" 認証コード {self.code}" if self.code else ""
        return f"{self.recipients}{code}  「{self.subject}」 ({saved})"


def announce(recipients: Sequence[str], message: EmailMessage) -> Announcement:
    """What the terminal says of ``message``: the code of a code mail stands out."""
    found = _CODE.search(_body(message))
    return Announcement(
        ", ".join(recipients), str(message["Subject"] or ""), found.group(1) if found else None
    )


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class _Saver:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._counter = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        stem = self._directory / f"{stamp}-{next(self._counter):04d}"
        raw = bytes(envelope.content)
        _write_new(stem.with_suffix(".eml"), raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        readable = stem.with_suffix(".txt")
        _write_new(readable, readable_text(message).encode())
        print(announce(envelope.rcpt_tos, message).line(readable), flush=True)
        return "250 OK"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ca-mailsink", description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="where .eml/.txt files go")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(_Saver(args.dir), hostname=args.host, port=args.port)
    controller.start()
    print(f"ca-mailsink: SMTP on {args.host}:{args.port}, saving to {args.dir}", flush=True)

    async def wait() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
