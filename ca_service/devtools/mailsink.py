"""``ca-mailsink``: a local SMTP server that keeps every message as an .eml file, so that a
demo user can read the codes and notices the CA sends (``python3 stack.py up`` runs it)."""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import itertools
import os
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["main"]


class _Saver:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._counter = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self._directory / f"{stamp}-{next(self._counter):04d}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        print(f"mail to {', '.join(envelope.rcpt_tos)}: {message['Subject']}  ({path})", flush=True)
        return "250 OK"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ca-mailsink", description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="where .eml files go")
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
