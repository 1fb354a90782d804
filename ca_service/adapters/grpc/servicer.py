"""Thin servicer: protobuf in, service call, protobuf out. Authorisation and error mapping
live in the interceptor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
from cryptography.hazmat.primitives.serialization import Encoding
from google.protobuf.timestamp_pb2 import Timestamp

from ca_service.adapters.grpc.interceptors import CALLER_ROLE
from ca_service.adapters.mail.outbox import OutboxRow, SqlOutbox
from ca_service.adapters.sql.audit import SqlAuditLog
from ca_service.adapters.sql.revocations import RevocationRecord
from ca_service.api import pb, pb_grpc
from ca_service.domain.accounts import AccountRole
from ca_service.domain.lockout import Access, access
from ca_service.domain.profiles import Role
from ca_service.domain.records import CertificateRecord, CertificateStatus, KeySource, status_at
from ca_service.errors import InvalidArgument, PermissionDenied, Unavailable
from ca_service.ports import Clock
from ca_service.services.accounts import AccountService, UserView
from ca_service.services.enrollment import EnrollmentService
from ca_service.services.issuance import IssuanceService, parse_serial
from ca_service.services.revocation import RevocationService

__all__ = ["CertificateAuthorityServicer", "certificate_message"]

Context = grpc.aio.ServicerContext[Any, Any]

_STATUS = {
    CertificateStatus.VALID: pb.CERTIFICATE_STATUS_VALID,
    CertificateStatus.EXPIRED: pb.CERTIFICATE_STATUS_EXPIRED,
    CertificateStatus.REVOKED: pb.CERTIFICATE_STATUS_REVOKED,
    CertificateStatus.NOT_YET_VALID: pb.CERTIFICATE_STATUS_NOT_YET_VALID,
}
_KEY_SOURCE = {KeySource.CSR: pb.KEY_SOURCE_CSR, KeySource.SERVER: pb.KEY_SOURCE_SERVER}


def _timestamp(instant: datetime) -> Timestamp:
    return Timestamp(seconds=int(instant.timestamp()))


def certificate_message(record: CertificateRecord, now: datetime) -> pb.Certificate:
    return pb.Certificate(
        serial_number=record.serial_hex,
        fingerprint_sha256=record.fingerprint_sha256,
        user_id=record.user_id,
        organization=record.organization,
        status=_STATUS[status_at(record, now)],
        not_before=_timestamp(record.not_before),
        not_after=_timestamp(record.not_after),
        issued_at=_timestamp(record.issued_at),
        subject=record.subject,
        key_source=_KEY_SOURCE[record.key_source],
        der=record.der,
    )


_ROLE = {AccountRole.MASTER: pb.USER_ROLE_MASTER, AccountRole.GENERAL: pb.USER_ROLE_GENERAL}
_ACCESS = {
    Access.OPEN: pb.USER_STATE_ACTIVE,
    Access.LOCKED: pb.USER_STATE_LOCKED,
    Access.BLOCKED: pb.USER_STATE_BLOCKED,
}


def user_message(view: UserView) -> pb.User:
    account, lockout = view.account, view.lockout
    state = access(lockout, view.now)
    if account.blocked_at is not None:
        state = Access.BLOCKED
    message = pb.User(
        user_id=account.user_id,
        organization_id=account.organization_id,
        organization_name=account.organization_name,
        role=_ROLE[account.role],
        email=account.email,
        state=_ACCESS[state],
        lock_count=lockout.locks,
        consecutive_failures=lockout.failures,
        created_at=_timestamp(account.created_at),
    )
    if state is Access.LOCKED and lockout.locked_until is not None:
        message.locked_until.CopyFrom(_timestamp(lockout.locked_until))
    return message


def _acting(acting_user_id: str) -> str:
    """A gateway always acts for a master user; the operator never does."""
    role = CALLER_ROLE.get(None)
    if role is Role.GATEWAY and not acting_user_id:
        raise PermissionDenied(
            "a gateway must name the master user it acts for", metadata={"field": "acting_user_id"}
        )
    if role is Role.OPERATOR and acting_user_id:
        raise InvalidArgument(
            "the operator acts for itself; leave acting_user_id empty",
            metadata={"field": "acting_user_id"},
        )
    return acting_user_id


class CertificateAuthorityServicer(pb_grpc.CertificateAuthorityServicer):
    def __init__(
        self,
        issuance: IssuanceService,
        clock: Clock,
        enrollment: EnrollmentService | None = None,
        accounts: AccountService | None = None,
        outbox: SqlOutbox | None = None,
        revocation: RevocationService | None = None,
        audit: SqlAuditLog | None = None,
    ) -> None:
        self._issuance = issuance
        self._clock = clock
        self._enrollment = enrollment
        self._accounts = accounts
        self._outbox = outbox
        self._revocation = revocation
        self._audit = audit
        chain = issuance.chain
        self._chain_response = pb.GetCaChainResponse(
            certificates=[certificate.public_bytes(Encoding.DER) for certificate in chain],
            pem="".join(certificate.public_bytes(Encoding.PEM).decode() for certificate in chain),
        )

    async def SignCsr(self, request: pb.SignCsrRequest, context: Context) -> pb.SignCsrResponse:
        record = await self._issuance.sign_csr(
            request.csr, user_id=request.user_id, organization=request.organization
        )
        return pb.SignCsrResponse(certificate=certificate_message(record, self._clock.now()))

    @property
    def enrollment(self) -> EnrollmentService:
        if self._enrollment is None:
            raise Unavailable("enrollment is not configured on this server")
        return self._enrollment

    @property
    def accounts(self) -> AccountService:
        if self._accounts is None:
            raise Unavailable("accounts are not configured on this server")
        return self._accounts

    async def IssueCertificate(
        self, request: pb.IssueCertificateRequest, context: Context
    ) -> pb.IssueCertificateResponse:
        if request.issuance_ticket:
            if request.csr:
                record = await self.enrollment.sign_csr(request.issuance_ticket, request.csr)
                return pb.IssueCertificateResponse(
                    certificate=certificate_message(record, self._clock.now())
                )
            issued = await self.enrollment.issue_pkcs12(
                request.issuance_ticket, request.pkcs12_password
            )
            return pb.IssueCertificateResponse(
                certificate=certificate_message(issued.record, self._clock.now()),
                pkcs12=issued.pkcs12,
                file_name=issued.file_name,
            )
        if CALLER_ROLE.get(None) is Role.GATEWAY:
            raise PermissionDenied(
                "a gateway issues only against an issuance ticket",
                metadata={"field": "issuance_ticket"},
            )
        issued = await self._issuance.issue_with_server_key(
            user_id=request.user_id,
            organization=request.organization,
            password=request.pkcs12_password,
        )
        return pb.IssueCertificateResponse(
            certificate=certificate_message(issued.record, self._clock.now()),
            pkcs12=issued.pkcs12,
            file_name=issued.file_name,
        )

    async def GetCertificate(
        self, request: pb.GetCertificateRequest, context: Context
    ) -> pb.Certificate:
        key = request.WhichOneof("key")
        if key == "serial_number":
            record = await self._issuance.by_serial(request.serial_number)
        elif key == "fingerprint_sha256":
            record = await self._issuance.by_fingerprint(request.fingerprint_sha256)
        else:
            raise InvalidArgument(
                "give serial_number or fingerprint_sha256", metadata={"field": "key"}
            )
        return certificate_message(record, self._clock.now())

    async def ListCertificates(
        self, request: pb.ListCertificatesRequest, context: Context
    ) -> pb.ListCertificatesResponse:
        records = await self._issuance.for_user(request.user_id)
        now = self._clock.now()
        return pb.ListCertificatesResponse(
            certificates=[certificate_message(record, now) for record in records]
        )

    async def GetCaChain(
        self, request: pb.GetCaChainRequest, context: Context
    ) -> pb.GetCaChainResponse:
        return self._chain_response

    # -- enrollment -----------------------------------------------------------------------

    async def StartAuthentication(
        self, request: pb.StartAuthenticationRequest, context: Context
    ) -> pb.StartAuthenticationResponse:
        started = await self.enrollment.start_authentication(request.user_id, request.password)
        return pb.StartAuthenticationResponse(
            session_handle=started.session_handle,
            code_expires_at=_timestamp(started.code_expires_at),
            masked_email=started.masked_email,
        )

    async def VerifyCode(
        self, request: pb.VerifyCodeRequest, context: Context
    ) -> pb.VerifyCodeResponse:
        verified = await self.enrollment.verify_code(request.session_handle, request.code)
        return pb.VerifyCodeResponse(
            issuance_ticket=verified.ticket,
            ticket_expires_at=_timestamp(verified.ticket_expires_at),
            user_id=verified.user_id,
        )

    async def Login(self, request: pb.LoginRequest, context: Context) -> pb.User:
        return user_message(await self.enrollment.login(request.user_id, request.password))

    # -- accounts -------------------------------------------------------------------------

    async def CreateOrganization(
        self, request: pb.CreateOrganizationRequest, context: Context
    ) -> pb.CreateOrganizationResponse:
        organization, secret = await self.accounts.create_organization(
            request.name, request.organization_id
        )
        response = pb.CreateOrganizationResponse(
            organization=pb.Organization(
                organization_id=organization.organization_id,
                name=organization.name,
                created_at=_timestamp(organization.created_at),
            ),
            initial_password=secret.value,
        )
        if secret.expires_at is not None:
            response.initial_password_expires_at.CopyFrom(_timestamp(secret.expires_at))
        return response

    async def RegisterMaster(self, request: pb.RegisterMasterRequest, context: Context) -> pb.User:
        account = await self.accounts.register_master(
            organization_id=request.organization_id,
            initial_password=request.initial_password,
            user_id=request.user_id,
            password=request.password,
            email=request.email,
        )
        return user_message(await self.accounts.user(acting_user_id="", user_id=account.user_id))

    async def CreateUser(
        self, request: pb.CreateUserRequest, context: Context
    ) -> pb.CreateUserResponse:
        account, secret = await self.accounts.create_user(
            acting_user_id=_acting(request.acting_user_id),
            organization_id=request.organization_id,
            user_id=request.user_id,
            email=request.email,
        )
        view = await self.accounts.user(acting_user_id="", user_id=account.user_id)
        return pb.CreateUserResponse(user=user_message(view), initial_password=secret.value)

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.User:
        if request.user_id and request.acting_user_id == request.user_id:
            return user_message(await self.accounts.own_record(request.user_id))
        return user_message(
            await self.accounts.user(
                acting_user_id=_acting(request.acting_user_id), user_id=request.user_id
            )
        )

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        views = await self.accounts.users(
            acting_user_id=_acting(request.acting_user_id), organization_id=request.organization_id
        )
        return pb.ListUsersResponse(users=[user_message(view) for view in views])

    async def UnlockUser(self, request: pb.UnlockUserRequest, context: Context) -> pb.User:
        return user_message(
            await self.accounts.unlock(
                acting_user_id=_acting(request.acting_user_id), user_id=request.user_id
            )
        )

    async def ResetPassword(
        self, request: pb.ResetPasswordRequest, context: Context
    ) -> pb.ResetPasswordResponse:
        secret = await self.accounts.reset_password(
            acting_user_id=_acting(request.acting_user_id), user_id=request.user_id
        )
        response = pb.ResetPasswordResponse(initial_password=secret.value)
        if secret.expires_at is not None:
            response.expires_at.CopyFrom(_timestamp(secret.expires_at))
        return response

    async def ListMail(self, request: pb.ListMailRequest, context: Context) -> pb.ListMailResponse:
        if self._outbox is None:
            raise Unavailable("mail is not configured on this server")
        if request.status not in ("", "pending", "sent", "failed", "expired"):
            raise InvalidArgument(
                "status must be pending, sent, failed or expired", metadata={"field": "status"}
            )
        rows = await self._outbox.list(
            limit=min(request.limit or 100, 1000), status=request.status or None
        )
        return pb.ListMailResponse(mail=[_mail_item(row) for row in rows])

    # -- revocation and audit ---------------------------------------------------------------

    @property
    def revocation(self) -> RevocationService:
        if self._revocation is None:
            raise Unavailable("revocation is not configured on this server")
        return self._revocation

    @property
    def audit(self) -> SqlAuditLog:
        if self._audit is None:
            raise Unavailable("the audit log is not configured on this server")
        return self._audit

    async def RevokeCertificate(
        self, request: pb.RevokeCertificateRequest, context: Context
    ) -> pb.RevokeCertificateResponse:
        target = request.WhichOneof("target")
        if target is None:
            raise InvalidArgument("give serial_number or user_id", metadata={"field": "target"})
        records = await self.revocation.revoke(
            serial=parse_serial(request.serial_number) if target == "serial_number" else None,
            user_id=request.user_id if target == "user_id" else None,
            reason_name=request.reason,
            invalidity_date=(
                request.invalidity_date.ToDatetime(tzinfo=UTC)
                if request.HasField("invalidity_date")
                else None
            ),
            actor="operator",
        )
        return pb.RevokeCertificateResponse(revocations=[_revocation(r) for r in records])

    async def WatchRevocations(
        self, request: pb.WatchRevocationsRequest, context: Context
    ) -> AsyncIterator[pb.WatchRevocationsResponse]:
        async for batch in self.revocation.watch(request.since_sequence):
            yield pb.WatchRevocationsResponse(
                revocations=[_revocation(r) for r in batch.revocations],
                latest_sequence=batch.latest_sequence,
                as_of=_timestamp(batch.as_of),
                changed_user_ids=batch.changed_users,
            )

    async def ListAudit(
        self, request: pb.ListAuditRequest, context: Context
    ) -> pb.ListAuditResponse:
        rows = await self.audit.list(
            user_id=request.user_id or None,
            action=request.action or None,
            since=request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None,
            until=request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None,
            limit=min(request.limit or 100, 10_000),
        )
        return pb.ListAuditResponse(
            records=[
                pb.AuditRecord(
                    id=row.id,
                    at=_timestamp(row.at),
                    actor=row.actor,
                    action=row.action,
                    user_id=row.user_id or "",
                    details=row.details,
                    prev_hash=row.prev_hash,
                    hash=row.hash,
                )
                for row in rows
            ]
        )

    async def VerifyAudit(
        self, request: pb.VerifyAuditRequest, context: Context
    ) -> pb.VerifyAuditResponse:
        rows, broken, problem = await self.audit.verify()
        return pb.VerifyAuditResponse(
            intact=broken is None, rows=rows, first_broken_id=broken or 0, problem=problem
        )


def _revocation(record: RevocationRecord) -> pb.Revocation:
    message = pb.Revocation(
        sequence=record.sequence,
        serial_number=record.serial_hex,
        user_id=record.user_id,
        revoked_at=_timestamp(record.revoked_at),
        reason=record.reason.name.lower(),
        not_after=_timestamp(record.not_after),
    )
    if record.invalidity_date is not None:
        message.invalidity_date.CopyFrom(_timestamp(record.invalidity_date))
    return message


def _mail_item(row: OutboxRow) -> pb.MailItem:
    item = pb.MailItem(
        id=row.id,
        kind=row.kind,
        recipient=row.recipient,
        subject=row.subject,
        status=row.status,
        attempts=row.attempts,
        created_at=_timestamp(row.created_at),
        next_attempt_at=_timestamp(row.next_attempt_at),
        last_error=row.last_error or "",
    )
    if row.sent_at is not None:
        item.sent_at.CopyFrom(_timestamp(row.sent_at))
    return item
