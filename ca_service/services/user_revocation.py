"""A master user revokes a general user's certificates (SPEC C6, C7; issue 11): for a PC
change or a lost PC, only within its own organisation (B6's rule of who manages whom), and
audited with the master user's ID as the actor. The operator may do the same for anyone."""

from __future__ import annotations

from ca_service.domain.accounts import OPERATOR_ACTOR, AccountRole
from ca_service.domain.holdings import RevocationCause
from ca_service.domain.records import RevocationRecord
from ca_service.errors import PermissionDenied
from ca_service.services.accounts import AccountService
from ca_service.services.revocation import RevocationService

__all__ = ["UserRevocation"]


class UserRevocation:
    def __init__(self, *, accounts: AccountService, revocation: RevocationService) -> None:
        self._accounts = accounts
        self._revocation = revocation

    async def revoke(
        self, *, acting_user_id: str, user_id: str, cause: RevocationCause
    ) -> list[RevocationRecord]:
        """Every valid certificate of ``user_id``, with the RFC 5280 reason of ``cause``.
        USER_NOT_FOUND for a user of another organisation (as if it did not exist),
        PERMISSION_DENIED for a master user's own or another master's certificates,
        CERTIFICATE_NOT_FOUND when the user holds no valid certificate."""
        actor, target = await self._accounts.managed(acting_user_id, user_id)
        if actor is not None and target.role is not AccountRole.GENERAL:
            raise PermissionDenied(
                "a master user revokes only the certificates of its organisation's general "
                "users; a master user's certificate is revoked by the operator"
            )
        return await self._revocation.revoke(
            serial=None,
            user_id=target.user_id,
            reason_name=cause.reason.name,
            invalidity_date=None,
            actor=actor.user_id if actor is not None else OPERATOR_ACTOR,
        )
