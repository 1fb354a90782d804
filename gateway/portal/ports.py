"""What the portal needs of the CA (SPEC D1): e-mail links for the registration and the
completion mail. The CA makes the tokens, keeps them hashed and sends the mails through its
outbox; :mod:`gateway.portal.ca` is the gRPC implementation."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

__all__ = ["PortalCa"]


class PortalCa(Protocol):
    async def request_registration(self, address: str, link_base_url: str) -> None:
        """Mails ``address`` a single-use link ``<link_base_url>?token=…``.
        :class:`~gateway.portal.errors.PortalUnavailable` when the CA cannot answer."""

    async def check_registration(self, token: str) -> str:
        """What opening the link would give (its address), leaving it unused; the same
        :class:`~gateway.portal.errors.LinkRefused` as confirming would raise."""

    async def confirm_registration(self, token: str) -> str:
        """The address a registration link was sent to, now verified (the link is used).
        :class:`~gateway.portal.errors.LinkRefused` for an expired, used or unknown link."""

    async def send_completion_mail(
        self, address: str, receipt_number: str, submitted_at: datetime
    ) -> None:
        """Hands the completion mail (オンライン申請受付完了のお知らせ) to the CA's outbox."""

    async def link_validity_text(self) -> str:
        """How long a link is valid, as the screens say it (from the CA's rules); empty
        when the CA does not say."""
