"""Issuance for the operator and other services (SPEC F1: SignCsr, IssueCertificate
without a ticket), bound to the account like the users' own enrollment:

- the user must have an account (USER_NOT_FOUND) that is not blocked (BLOCKED);
- the subject's organisation is the account's, never the caller's word: a differing
  ``organization`` is refused (ORGANIZATION_MISMATCH), so a certificate can never say
  O=<another organisation> while the gateway tells the portal the account's;
- the renewal window (SPEC C2) applies unless the caller explicitly overrides it;
- the audit entry of every such issuance names the caller's role and credential, and
  whether the caller overrode the renewal window (``renewal_window``: ``open`` or
  ``overridden``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ca_service.domain.accounts import Account
from ca_service.domain.identifiers import user_id_problem
from ca_service.domain.profiles import Caller
from ca_service.domain.records import CertificateRecord
from ca_service.errors import Blocked, ErrorReason, InvalidArgument, NotFound
from ca_service.ports import AccountStore, CertificateStore, Clock
from ca_service.services.issuance import IssuanceService, IssuedKeyPair
from ca_service.services.renewal import renewal_refusal

__all__ = ["AccountIssuance", "IssuanceOrder"]


@dataclass(frozen=True, slots=True)
class IssuanceOrder:
    """What an operator or service caller asks for."""

    user_id: str
    caller: Caller
    # Optional; must name the account's organisation (name or ID) when given.
    organization: str = ""
    override_renewal_window: bool = False


class AccountIssuance:
    def __init__(
        self,
        *,
        accounts: AccountStore,
        certificates: CertificateStore,
        issuance: IssuanceService,
        clock: Clock,
    ) -> None:
        self._accounts = accounts
        self._certificates = certificates
        self._issuance = issuance
        self._clock = clock

    async def sign_csr(self, csr: bytes, order: IssuanceOrder) -> CertificateRecord:
        account, details = await self._allowed(order)
        return await self._issuance.sign_csr(
            csr,
            user_id=account.user_id,
            organization=account.organization_name,
            actor=order.caller.actor,
            details=details,
        )

    async def issue_pkcs12(self, password: str, order: IssuanceOrder) -> IssuedKeyPair:
        account, details = await self._allowed(order)
        return await self._issuance.issue_with_server_key(
            user_id=account.user_id,
            organization=account.organization_name,
            password=password,
            actor=order.caller.actor,
            details=details,
        )

    async def _allowed(self, order: IssuanceOrder) -> tuple[Account, dict[str, str]]:
        """The account to issue for and the audit details, or the rule the order breaks."""
        user_id = order.user_id
        problem = user_id_problem(user_id)
        if problem is not None:
            raise InvalidArgument(
                problem, reason=ErrorReason.INVALID_USER_ID, metadata={"field": "user_id"}
            )
        account = await self._accounts.account(user_id)
        if account is None:
            raise NotFound(
                f"no user {user_id}: certificates are issued only for existing accounts",
                reason=ErrorReason.USER_NOT_FOUND,
                metadata={"field": "user_id"},
            )
        if account.blocked_at is not None:
            raise Blocked(
                f"user {user_id} is blocked; unlock it first (ca-admin user unlock {user_id})",
                metadata={"field": "user_id"},
            )
        if order.organization and order.organization not in (
            account.organization_name,
            account.organization_id,
        ):
            raise InvalidArgument(
                f"user {user_id} belongs to organisation {account.organization_id} "
                f"({account.organization_name}), not {order.organization!r}; the subject's "
                "organisation always comes from the account, so leave it out",
                reason=ErrorReason.ORGANIZATION_MISMATCH,
                metadata={"field": "organization"},
            )
        if order.override_renewal_window:
            # Not looked up: the caller takes responsibility, and the audit says so.
            window = "overridden"
        else:
            records = await self._certificates.for_user(user_id)
            refusal = renewal_refusal(records, self._clock.now())
            if refusal is not None:
                raise refusal
            window = "open"
        details = {
            "caller_role": order.caller.role.value,
            "caller_credential": order.caller.name,
            "organization_id": account.organization_id,
            "renewal_window": window,
        }
        return account, details
