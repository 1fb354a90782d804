"""One mail worker in an OS process of its own (used by test_delivery).

Usage: python -m tests.mail.deliver_process DATABASE_URL SMTP_PORT
Prints "ready", waits for a line on stdin (so that two processes start together), delivers
until nothing is pending, and prints how many mails this process sent.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

from ca_service.adapters.mail.worker import MailDelivery
from ca_service.adapters.sql.database import Cursor, open_database
from ca_service.shared.clock import SystemClock

SENDER = "noreply@ca.example.jp"


def _pending(cursor: Cursor) -> int:
    row = cursor.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()
    return int(row[0]) if row else 0


async def deliver(url: str, port: int) -> int:
    database = open_database(url, readers=1)
    try:
        worker = MailDelivery(
            database,
            "127.0.0.1",
            port,
            SENDER,
            clock=SystemClock(),
            batch_size=3,
            timeout=5,
            lease=timedelta(minutes=1),
        )
        sent = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sent += await worker.run_once()
            if not await database.read(_pending):
                break
            await asyncio.sleep(0.005)  # the rest is leased to the other process
        return sent
    finally:
        database.close()


def main() -> None:
    url, port = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    sys.stdin.readline()
    print(asyncio.run(deliver(url, port)), flush=True)


if __name__ == "__main__":
    main()
