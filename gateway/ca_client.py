"""The gateway's side of the CA's gRPC API: the calls the screens and the identity check
need, with the CA's refusals turned into :class:`CaRefusal` (reason + metadata) and user
records cached for a short time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final, Literal

import grpc

from ca_service.api import ErrorReason, pb
from ca_service.client import api_error, stub
from gateway.accounts import Issued, RevocationCause, Rules, UserRecord
from gateway.errors import GatewayError

__all__ = [
    "NOT_CACHED",
    "CaBusy",
    "CaClient",
    "CaRefusal",
    "CaUnavailable",
    "NotCached",
    "reason_of",
]


class NotCached(Enum):
    """The cache does not hold the user's record (it has to be asked of the CA)."""

    NOT_CACHED = "not cached"


NOT_CACHED: Final = NotCached.NOT_CACHED


def reason_of(reason: str, status: grpc.StatusCode) -> ErrorReason:
    """The reason of a refusal: its ErrorInfo reason, else the status's name (an error
    without ErrorInfo), else INTERNAL (a reason newer than this gateway)."""
    for name in (reason, status.name):
        if name in ErrorReason.__members__:
            return ErrorReason[name]
    return ErrorReason.INTERNAL


class CaRefusal(GatewayError):
    """The CA answered with an error; ``reason`` is its machine-readable ErrorInfo reason."""

    http_status = 400

    def __init__(self, reason: ErrorReason, message: str, metadata: dict[str, str]) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = metadata


class CaUnavailable(GatewayError):
    http_status = 503


class CaBusy(GatewayError):
    """The CA refused for now (RESOURCE_EXHAUSTED, reason BUSY: too many password checks at
    once); nothing was checked. ``retry_after`` in seconds. (Other RESOURCE_EXHAUSTED
    reasons, e.g. RESEND_LIMITED, are refusals the screens explain.)"""

    http_status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CaClient:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        user_cache_seconds: float = 2.0,
        timeout: float = 15.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub = stub(channel)
        self._timeout = timeout
        self._cache_seconds = user_cache_seconds
        self._monotonic = monotonic
        self._users: dict[str, tuple[float, UserRecord | None]] = {}

    async def _call(self, method: str, request: object) -> Any:
        """The answer of ``method``: a message of the generated API (its stubs are untyped)."""
        try:
            return await getattr(self._stub, method)(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            error = api_error(exc)
            if error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise CaUnavailable(f"the CA is unavailable: {error.message}") from None
            if error.code is grpc.StatusCode.RESOURCE_EXHAUSTED and error.reason in (
                ErrorReason.BUSY,
                "",
            ):
                wait = error.metadata.get("retry_after_seconds", "")
                raise CaBusy(
                    f"the CA is busy: {error.message}", int(wait) if wait.isdigit() else 1
                ) from None
            raise CaRefusal(
                reason_of(error.reason, error.code), error.message, error.metadata
            ) from None

    # -- identity -------------------------------------------------------------------------

    def cached_user(self, user_id: str) -> UserRecord | Literal[NotCached.NOT_CACHED] | None:
        """The user's record while the cache holds it (None: the CA has no such user), else
        :data:`NOT_CACHED`: what :meth:`user` answers without asking the CA."""
        cached = self._users.get(user_id)
        if cached is not None and self._monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        return NOT_CACHED

    async def user(self, user_id: str) -> UserRecord | None:
        """The user's record, cached for a short time; None when the CA has no such user."""
        cached = self.cached_user(user_id)
        if cached is not NOT_CACHED:
            return cached
        now = self._monotonic()
        try:
            # Acting for the user itself: the gateway has just verified its certificate.
            message = await self._call(
                "GetUser", pb.GetUserRequest(user_id=user_id, acting_user_id=user_id)
            )
            record: UserRecord | None = UserRecord.from_message(message)
        except CaRefusal as refusal:
            if refusal.reason is not ErrorReason.USER_NOT_FOUND:
                raise
            record = None
        if len(self._users) > 10_000:
            self._users.clear()
        self._users[user_id] = (now, record)
        return record

    def forget_user(self, user_id: str) -> None:
        self._users.pop(user_id, None)

    async def issuing_ca(self) -> bytes:
        chain = await self._call("GetCaChain", pb.GetCaChainRequest())
        return bytes(chain.certificates[0])

    async def rules(self) -> Rules:
        """The figures of the CA's rules, for the screens; ValueError when incomplete."""
        return Rules.from_message(await self._call("GetRules", pb.GetRulesRequest()))

    # -- login and enrollment -------------------------------------------------------------

    async def login(self, user_id: str, password: str) -> UserRecord:
        message = await self._call("Login", pb.LoginRequest(user_id=user_id, password=password))
        self.forget_user(user_id)
        return UserRecord.from_message(message)

    async def start_authentication(self, user_id: str, password: str) -> tuple[str, datetime, str]:
        """(session handle, code expiry, masked e-mail address)."""
        answer = await self._call(
            "StartAuthentication", pb.StartAuthenticationRequest(user_id=user_id, password=password)
        )
        self.forget_user(user_id)
        return (
            answer.session_handle,
            answer.code_expires_at.ToDatetime(tzinfo=UTC),
            answer.masked_email,
        )

    async def verify_code(self, handle: str, code: str) -> str:
        """The issuance ticket."""
        answer = await self._call(
            "VerifyCode", pb.VerifyCodeRequest(session_handle=handle, code=code)
        )
        return str(answer.issuance_ticket)

    async def issue(self, ticket: str, password: str) -> Issued:
        answer = await self._call(
            "IssueCertificate",
            pb.IssueCertificateRequest(issuance_ticket=ticket, pkcs12_password=password),
        )
        return Issued.from_message(answer)

    async def register_master(
        self, organization_id: str, initial_password: str, user_id: str, password: str, email: str
    ) -> UserRecord:
        message = await self._call(
            "RegisterMaster",
            pb.RegisterMasterRequest(
                organization_id=organization_id,
                initial_password=initial_password,
                user_id=user_id,
                password=password,
                email=email,
            ),
        )
        return UserRecord.from_message(message)

    async def change_password(self, user_id: str, current: str, new: str) -> UserRecord:
        """パスワード変更 (also how a given password is replaced by the user's own)."""
        message = await self._call(
            "ChangePassword",
            pb.ChangePasswordRequest(user_id=user_id, current_password=current, new_password=new),
        )
        self.forget_user(user_id)
        return UserRecord.from_message(message)

    async def resend_code(self, handle: str) -> tuple[datetime, str]:
        """認証コードの再送: (the new code's expiry, masked e-mail address)."""
        answer = await self._call("ResendCode", pb.ResendCodeRequest(session_handle=handle))
        return answer.code_expires_at.ToDatetime(tzinfo=UTC), answer.masked_email

    # -- a master user's page ---------------------------------------------------------------

    async def reset_password(self, acting_user_id: str, user_id: str) -> str:
        """A general user's new initial password, to be shown once."""
        answer = await self._call(
            "ResetPassword",
            pb.ResetPasswordRequest(user_id=user_id, acting_user_id=acting_user_id),
        )
        return str(answer.initial_password)

    async def revoke_certificates(
        self, acting_user_id: str, user_id: str, cause: RevocationCause
    ) -> int:
        """Revokes the user's valid certificates for ``cause``; returns how many."""
        answer = await self._call(
            "RevokeUserCertificates",
            pb.RevokeUserCertificatesRequest(
                acting_user_id=acting_user_id, user_id=user_id, cause=cause.message_value
            ),
        )
        self.forget_user(user_id)
        return len(answer.revocations)

    async def users(self, acting_user_id: str) -> list[UserRecord]:
        answer = await self._call("ListUsers", pb.ListUsersRequest(acting_user_id=acting_user_id))
        return [UserRecord.from_message(u) for u in answer.users]

    async def unlock(self, acting_user_id: str, user_id: str) -> UserRecord:
        message = await self._call(
            "UnlockUser", pb.UnlockUserRequest(user_id=user_id, acting_user_id=acting_user_id)
        )
        self.forget_user(user_id)
        return UserRecord.from_message(message)

    async def create_user(
        self, acting_user_id: str, organization_id: str, user_id: str, email: str
    ) -> tuple[UserRecord, str]:
        answer = await self._call(
            "CreateUser",
            pb.CreateUserRequest(
                acting_user_id=acting_user_id,
                organization_id=organization_id,
                user_id=user_id,
                email=email,
            ),
        )
        return (
            UserRecord.from_message(answer.user),
            str(answer.initial_password),
        )

    # -- e-mail verification (SPEC D1) --------------------------------------------------------

    async def request_email_change(
        self, user_id: str, address: str, link_base_url: str
    ) -> tuple[datetime, str]:
        """Mails ``address`` a link to ``link_base_url``; (link expiry, masked address)."""
        answer = await self._call(
            "RequestEmailVerification",
            pb.RequestEmailVerificationRequest(
                purpose=pb.EMAIL_PURPOSE_USER_EMAIL_CHANGE,
                user_id=user_id,
                address=address,
                link_base_url=link_base_url,
            ),
        )
        return answer.expires_at.ToDatetime(tzinfo=UTC), str(answer.masked_address)

    async def confirm_email(self, token: str, *, check_only: bool = False) -> tuple[str, str]:
        """Opens an e-mail change link (``check_only``: only looks); (user ID, the new
        address). A refusal says EMAIL_LINK_EXPIRED, EMAIL_LINK_USED or EMAIL_LINK_UNKNOWN."""
        answer = await self._call(
            "ConfirmEmailVerification",
            pb.ConfirmEmailVerificationRequest(token=token, check_only=check_only),
        )
        if not check_only:
            self.forget_user(answer.user_id)
        return str(answer.user_id), str(answer.address)
