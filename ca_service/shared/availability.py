"""Whether a peer (the SQL store, Redis, the CA) answers, as last seen by its callers.

Every use of the peer reports its outcome; a change of state is logged once (one line when
the peer becomes unavailable, one when it answers again), never once per failed request.
Health endpoints read the state. Thread-safe: the SQL store reports from its threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Availability", "AvailabilityReport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AvailabilityReport:
    available: bool
    # While unavailable: since how long and why (an exception's class name and message,
    # never a request's data).
    down_seconds: float | None = None
    cause: str | None = None

    def as_dict(self) -> dict[str, object]:
        report: dict[str, object] = {"available": self.available}
        if not self.available:
            report["down_seconds"] = round(self.down_seconds or 0.0, 3)
            report["cause"] = self.cause
        return report


class Availability:
    def __init__(self, peer: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.peer = peer
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._cause = ""

    @property
    def available(self) -> bool:
        return self._down_since is None

    def failed(self, cause: BaseException | str) -> None:
        """The peer did not answer (after any retry that was allowed)."""
        if self._down_since is not None:  # already reported
            return
        text = cause if isinstance(cause, str) else _describe(cause)
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = self._monotonic()
            self._cause = text
        log.warning("%s unavailable: %s", self.peer, text)

    def succeeded(self) -> None:
        """The peer answered."""
        if self._down_since is None:  # the usual case: no lock taken
            return
        with self._lock:
            since = self._down_since
            if since is None:
                return
            self._down_since = None
        log.warning("%s available again after %.1f s", self.peer, self._monotonic() - since)

    def report(self) -> AvailabilityReport:
        since = self._down_since
        if since is None:
            return AvailabilityReport(True)
        return AvailabilityReport(False, self._monotonic() - since, self._cause)


def _describe(error: BaseException) -> str:
    """An exception as a log-safe cause: its class and the first line of its message (the
    drivers' connection messages name hosts and states, never data or passwords)."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text[:300]
