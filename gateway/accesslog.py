"""The access log's output: JSON lines written in batches, one write per turn of the event
loop instead of one per request (under load that is most of the logging's cost)."""

from __future__ import annotations

import asyncio
from typing import TextIO

__all__ = ["BatchedLines"]


class BatchedLines:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending: list[str] = []

    def __call__(self, line: str) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = self._pending, []
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
