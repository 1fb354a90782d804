"""Run as ``python -m tests.redis._fire URL USER NOW COUNT READY GO``: a second OS process.

Connects, reports ready, waits for the go signal, then fires COUNT concurrent FAILUREs at
NOW and prints how many the store applied and the failure count each one saw before.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime

from redis.asyncio import Redis

from ca_service.adapters.redis.client import connect
from ca_service.adapters.redis.lockout import RedisLockoutStore
from ca_service.domain.lockout import Event


async def main(url: str, user_id: str, now: datetime, count: int, ready: str, go: str) -> None:
    peer = connect(url)
    # The start signal waits longer than the service's command timeout: its own client.
    signals = Redis.from_url(url)
    try:
        store = RedisLockoutStore(peer)
        await peer.ping()  # the connection is up before the start signal
        await signals.rpush(ready, "1")
        if not await signals.blpop([go], timeout=30):
            raise SystemExit("no go signal")
        changes = await asyncio.gather(
            *(store.record(user_id, Event.FAILURE, now) for _ in range(count))
        )
    finally:
        await peer.aclose()
        await signals.aclose()
    seen = [change.before.failures for change in changes if change.applied]
    print(json.dumps({"applied": len(seen), "before": seen}))


if __name__ == "__main__":
    url, user_id, now, count, ready, go = sys.argv[1:]
    asyncio.run(main(url, user_id, datetime.fromisoformat(now), int(count), ready, go))
