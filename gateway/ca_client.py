"""The gateway's side of the CA's gRPC API: the calls the screens and the identity check
need, with the CA's refusals turned into :class:`CaRefusal` (reason + metadata) and user
records cached for a short time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from ca_service.api import pb
from ca_service.client import api_error, stub
from gateway.errors import GatewayError

__all__ = ["CaClient", "CaRefusal", "CaUnavailable", "Issued", "UserRecord"]


class CaRefusal(GatewayError):
    """The CA answered with an error; ``reason`` is its machine-readable ErrorInfo reason."""

    http_status = 400

    def __init__(self, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = metadata


class CaUnavailable(GatewayError):
    http_status = 503


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: str
    organization_id: str
    organization_name: str
    role: str  # "master" or "general"
    email: str
    state: str  # "active", "locked" or "blocked"
    locked_until: datetime | None

    @classmethod
    def from_message(cls, user: pb.User) -> UserRecord:
        role = {pb.USER_ROLE_MASTER: "master", pb.USER_ROLE_GENERAL: "general"}.get(
            user.role, "unknown"
        )
        state = {pb.USER_STATE_LOCKED: "locked", pb.USER_STATE_BLOCKED: "blocked"}.get(
            user.state, "active"
        )
        locked_until = (
            user.locked_until.ToDatetime(tzinfo=UTC) if user.HasField("locked_until") else None
        )
        return cls(
            user.user_id,
            user.organization_id,
            user.organization_name,
            role,
            user.email,
            state,
            locked_until,
        )


@dataclass(frozen=True, slots=True)
class Issued:
    pkcs12: bytes
    file_name: str
    serial_number: str
    not_after: datetime


def _when(timestamp: object) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined, no-any-return]


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

    async def _call(self, method: str, request: object) -> object:
        try:
            return await getattr(self._stub, method)(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            error = api_error(exc)
            if error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise CaUnavailable(f"the CA is unavailable: {error.message}") from None
            raise CaRefusal(
                error.reason or error.code.name, error.message, error.metadata
            ) from None

    # -- identity -------------------------------------------------------------------------

    async def user(self, user_id: str) -> UserRecord | None:
        """The user's record, cached for a short time; None when the CA has no such user."""
        cached = self._users.get(user_id)
        now = self._monotonic()
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        try:
            # Acting for the user itself: the gateway has just verified its certificate.
            message = await self._call(
                "GetUser", pb.GetUserRequest(user_id=user_id, acting_user_id=user_id)
            )
            record: UserRecord | None = UserRecord.from_message(message)  # type: ignore[arg-type]
        except CaRefusal as refusal:
            if refusal.reason != "USER_NOT_FOUND":
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
        return bytes(chain.certificates[0])  # type: ignore[attr-defined]

    # -- login and enrollment -------------------------------------------------------------

    async def login(self, user_id: str, password: str) -> UserRecord:
        message = await self._call("Login", pb.LoginRequest(user_id=user_id, password=password))
        self.forget_user(user_id)
        return UserRecord.from_message(message)  # type: ignore[arg-type]

    async def start_authentication(self, user_id: str, password: str) -> tuple[str, datetime, str]:
        """(session handle, code expiry, masked e-mail address)."""
        answer = await self._call(
            "StartAuthentication", pb.StartAuthenticationRequest(user_id=user_id, password=password)
        )
        self.forget_user(user_id)
        return (
            answer.session_handle,  # type: ignore[attr-defined]
            _when(answer.code_expires_at),  # type: ignore[attr-defined]
            answer.masked_email,  # type: ignore[attr-defined]
        )

    async def verify_code(self, handle: str, code: str) -> str:
        """The issuance ticket."""
        answer = await self._call(
            "VerifyCode", pb.VerifyCodeRequest(session_handle=handle, code=code)
        )
        return str(answer.issuance_ticket)  # type: ignore[attr-defined]

    async def issue(self, ticket: str, password: str) -> Issued:
        answer = await self._call(
            "IssueCertificate",
            pb.IssueCertificateRequest(issuance_ticket=ticket, pkcs12_password=password),
        )
        certificate = answer.certificate  # type: ignore[attr-defined]
        return Issued(
            bytes(answer.pkcs12),  # type: ignore[attr-defined]
            str(answer.file_name),  # type: ignore[attr-defined]
            certificate.serial_number,
            _when(certificate.not_after),
        )

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
        return UserRecord.from_message(message)  # type: ignore[arg-type]

    # -- a master user's page ---------------------------------------------------------------

    async def users(self, acting_user_id: str) -> list[UserRecord]:
        answer = await self._call("ListUsers", pb.ListUsersRequest(acting_user_id=acting_user_id))
        return [UserRecord.from_message(u) for u in answer.users]  # type: ignore[attr-defined]

    async def unlock(self, acting_user_id: str, user_id: str) -> UserRecord:
        message = await self._call(
            "UnlockUser", pb.UnlockUserRequest(user_id=user_id, acting_user_id=acting_user_id)
        )
        self.forget_user(user_id)
        return UserRecord.from_message(message)  # type: ignore[arg-type]

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
            UserRecord.from_message(answer.user),  # type: ignore[attr-defined]
            str(answer.initial_password),  # type: ignore[attr-defined]
        )
