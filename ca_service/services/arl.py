"""Keeps the root CA's CRL (the ARL) current and at hand for the HTTP endpoint.

The root key stays out of the running service: the ARL is a file in the data directory,
signed by ``ca-service init``, ``ca-service sign-arl`` or ``upgrade-issuing``. While the root
key is in the data directory (as ``init`` leaves it), this also re-signs the ARL when a third
of its validity is left, loading the key only for that moment; once the root key is kept
offline, the operator re-signs it (``sign-arl``) and this warns when that falls due.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from ca_service.errors import ConfigurationError
from ca_service.pki.crl import SignedArl
from ca_service.ports import Clock

__all__ = ["RootCrlKeeper"]

log = logging.getLogger(__name__)


class RootCrlKeeper:
    def __init__(
        self, renew: Callable[[datetime], SignedArl], clock: Clock, validity: timedelta
    ) -> None:
        """``renew(now)`` returns the stored ARL, re-signed first when it is due and the
        root key is available (:meth:`CaFiles.arl`)."""
        self._renew = renew
        self._clock = clock
        self._validity = validity
        self.current: SignedArl | None = None
        self._warned_at: datetime | None = None  # hourly, not every minute

    def _hourly(self, now: datetime) -> bool:
        if self._warned_at is not None and now - self._warned_at < timedelta(hours=1):
            return False
        self._warned_at = now
        return True

    async def refresh(self) -> None:
        now = self._clock.now()
        try:
            arl = await asyncio.to_thread(self._renew, now)
        except ConfigurationError as error:
            # Only relying parties that check the issuing CA need it; everything else goes
            # on (the endpoint answers 503 until there is one).
            if self._hourly(now):
                log.error("no root CRL to serve: %s", error.message)
            return
        if self.current is None or arl.number != self.current.number:
            log.info("serving root CRL number %d (next update %s)", arl.number, arl.next_update)
        self.current = arl
        if arl.next_update - now <= self._validity / 3 and self._hourly(now):
            log.warning(
                "the root CRL expires at %s and cannot be re-signed here (no root key in the "
                "data directory): run `ca-service sign-arl` where the root key is",
                arl.next_update.isoformat(),
            )
