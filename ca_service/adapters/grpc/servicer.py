"""Thin servicer: protobuf in, service call, protobuf out. Authorisation and error mapping
live in the interceptor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
from cryptography.hazmat.primitives.serialization import Encoding
from google.protobuf.timestamp_pb2 import Timestamp

from ca_service.adapters.grpc.interceptors import CALLER, CALLER_ROLE
from ca_service.api import pb, pb_grpc
from ca_service.domain.accounts import AccountRole
from ca_service.domain.email_verification import VerificationPurpose
from ca_service.domain.holdings import CertificateSummary, Holding, RevocationCause
from ca_service.domain.lockout import Access, access
from ca_service.domain.mail import OutboxRow
from ca_service.domain.profiles import Role
from ca_service.domain.records import (
    CertificateRecord,
    CertificateStatus,
    KeySource,
    RevocationRecord,
    status_at,
)
from ca_service.domain.rules import Rules
from ca_service.errors import ErrorReason, InvalidArgument, PermissionDenied, Unavailable
from ca_service.ports import Clock
from ca_service.services.account_issuance import AccountIssuance, IssuanceOrder
from ca_service.services.accounts import AccountService, UserView
from ca_service.services.email_verification import EmailVerificationService
from ca_service.services.enrollment import EnrollmentService
from ca_service.services.issuance import IssuanceService, parse_serial
from ca_service.services.oversight import AuditTrail, MailListing
from ca_service.services.revocation import RevocationService
from ca_service.services.user_revocation import UserRevocation

__all__ = ["CertificateAuthorityServicer", "certificate_message", "rules_message"]

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


def rules_message(rules: Rules) -> pb.Rules:
    return pb.Rules(
        user_id_min_length=rules.user_id_min_length,
        user_id_max_length=rules.user_id_max_length,
        password_min_length=rules.password_min_length,
        password_max_length=rules.password_max_length,
        code_digits=rules.code_digits,
        failures_to_lock=rules.failures_to_lock,
        locks_to_block=rules.locks_to_block,
        certificate_validity_days=rules.certificate_validity_days,
        renewal_window_days=rules.renewal_window_days,
        code_validity=rules.code_validity,
        lock_duration=rules.lock_duration,
        email_link_validity=rules.email_link_validity,
        resend_interval=rules.resend_interval,
        resends_per_window=rules.resends_per_window,
        resend_window=rules.resend_window,
    )


_PURPOSE = {
    VerificationPurpose.USER_EMAIL_CHANGE: pb.EMAIL_PURPOSE_USER_EMAIL_CHANGE,
    VerificationPurpose.PORTAL_REGISTRATION: pb.EMAIL_PURPOSE_PORTAL_REGISTRATION,
}
_PURPOSE_OF: dict[int, VerificationPurpose] = {
    value: purpose for purpose, value in _PURPOSE.items()
}


def _purpose(value: int) -> VerificationPurpose:
    purpose = _PURPOSE_OF.get(value)
    if purpose is None:
        raise InvalidArgument(
            "purpose must be USER_EMAIL_CHANGE or PORTAL_REGISTRATION",
            metadata={"field": "purpose"},
        )
    return purpose


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
        password_change_required=account.password_initial,
    )
    if state is Access.LOCKED and lockout.locked_until is not None:
        message.locked_until.CopyFrom(_timestamp(lockout.locked_until))
    if view.certificate is not None:
        message.certificate.CopyFrom(_summary_message(view.certificate))
    if account.password_changed_at is not None:
        message.password_changed_at.FromDatetime(account.password_changed_at)  # exact
    return message


_HOLDING = {
    Holding.VALID: pb.CERTIFICATE_HOLDING_VALID,
    Holding.REVOKED: pb.CERTIFICATE_HOLDING_REVOKED,
    Holding.EXPIRED: pb.CERTIFICATE_HOLDING_EXPIRED,
    Holding.NONE: pb.CERTIFICATE_HOLDING_NONE,
}
_CAUSE = {
    pb.REVOCATION_CAUSE_PC_CHANGE: RevocationCause.PC_CHANGE,
    pb.REVOCATION_CAUSE_LOST_PC: RevocationCause.LOST_PC,
}


def _summary_message(summary: CertificateSummary) -> pb.CertificateSummary:
    message = pb.CertificateSummary(
        holding=_HOLDING[summary.holding],
        serial_number=summary.serial_hex,
        renewal_open=summary.renewal_open,
    )
    if summary.not_after is not None:
        message.not_after.CopyFrom(_timestamp(summary.not_after))
    if summary.renewal_opens_at is not None:
        message.renewal_opens_at.CopyFrom(_timestamp(summary.renewal_opens_at))
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


def _order(request: pb.SignCsrRequest | pb.IssueCertificateRequest) -> IssuanceOrder:
    """An operator's or service's issuance for a named user, with who asked."""
    return IssuanceOrder(
        user_id=request.user_id,
        caller=CALLER.get(),
        organization=request.organization,
        override_renewal_window=request.override_renewal_window,
    )


class CertificateAuthorityServicer(pb_grpc.CertificateAuthorityServicer):
    def __init__(
        self,
        issuance: IssuanceService,
        clock: Clock,
        enrollment: EnrollmentService | None = None,
        accounts: AccountService | None = None,
        mail: MailListing | None = None,
        revocation: RevocationService | None = None,
        audit: AuditTrail | None = None,
        account_issuance: AccountIssuance | None = None,
        rules: Rules | None = None,
        email: EmailVerificationService | None = None,
        user_revocation: UserRevocation | None = None,
    ) -> None:
        self._issuance = issuance
        self._email = email
        self._user_revocation = user_revocation
        self._account_issuance = account_issuance
        self._clock = clock
        self._enrollment = enrollment
        self._accounts = accounts
        self._mail = mail
        self._revocation = revocation
        self._audit = audit
        chain = issuance.chain
        self._rules = rules_message(rules or Rules())
        self._chain_response = pb.GetCaChainResponse(
            certificates=[certificate.public_bytes(Encoding.DER) for certificate in chain],
            pem="".join(certificate.public_bytes(Encoding.PEM).decode() for certificate in chain),
        )

    @property
    def account_issuance(self) -> AccountIssuance:
        if self._account_issuance is None:
            raise Unavailable("issuance for named users is not configured on this server")
        return self._account_issuance

    async def SignCsr(self, request: pb.SignCsrRequest, context: Context) -> pb.SignCsrResponse:
        record = await self.account_issuance.sign_csr(request.csr, _order(request))
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
            if request.override_renewal_window:
                raise InvalidArgument(
                    "the renewal window cannot be overridden with an issuance ticket",
                    metadata={"field": "override_renewal_window"},
                )
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
        issued = await self.account_issuance.issue_pkcs12(request.pkcs12_password, _order(request))
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

    async def GetRules(self, request: pb.GetRulesRequest, context: Context) -> pb.Rules:
        return self._rules

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
        if self._mail is None:
            raise Unavailable("mail is not configured on this server")
        rows = await self._mail.list(status=request.status, limit=request.limit)
        return pb.ListMailResponse(mail=[_mail_item(row) for row in rows])

    # -- revocation and audit ---------------------------------------------------------------

    @property
    def revocation(self) -> RevocationService:
        if self._revocation is None:
            raise Unavailable("revocation is not configured on this server")
        return self._revocation

    @property
    def audit(self) -> AuditTrail:
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
            user_id=request.user_id,
            action=request.action,
            since=request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None,
            until=request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None,
            limit=request.limit,
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

    # -- e-mail verification (SPEC D1) and the portal's mail -------------------------------

    @property
    def email(self) -> EmailVerificationService:
        if self._email is None:
            raise Unavailable("e-mail verification is not configured on this server")
        return self._email

    async def RequestEmailVerification(
        self, request: pb.RequestEmailVerificationRequest, context: Context
    ) -> pb.RequestEmailVerificationResponse:
        requested = await self.email.request(
            CALLER.get(),
            _purpose(request.purpose),
            user_id=request.user_id,
            address=request.address,
            link_base_url=request.link_base_url,
        )
        return pb.RequestEmailVerificationResponse(
            expires_at=_timestamp(requested.expires_at), masked_address=requested.masked_address
        )

    async def ConfirmEmailVerification(
        self, request: pb.ConfirmEmailVerificationRequest, context: Context
    ) -> pb.ConfirmEmailVerificationResponse:
        verified = await self.email.confirm(
            CALLER.get(), request.token, check_only=request.check_only
        )
        return pb.ConfirmEmailVerificationResponse(
            purpose=_PURPOSE[verified.purpose],
            address=verified.address,
            user_id=verified.user_id or "",
        )

    async def SendProcedureCompletionMail(
        self, request: pb.SendProcedureCompletionMailRequest, context: Context
    ) -> pb.SendProcedureCompletionMailResponse:
        if not request.HasField("submitted_at"):
            raise InvalidArgument("submitted_at is required", metadata={"field": "submitted_at"})
        queued = await self.email.send_completion(
            CALLER.get(),
            address=request.address,
            receipt_number=request.receipt_number,
            submitted_at=request.submitted_at.ToDatetime(tzinfo=UTC),
        )
        return pb.SendProcedureCompletionMailResponse(queued=queued)

    # -- password change, resending the code, a master user's revocations (issue 11) ---------

    async def ChangePassword(self, request: pb.ChangePasswordRequest, context: Context) -> pb.User:
        return user_message(
            await self.enrollment.change_password(
                request.user_id, request.current_password, request.new_password
            )
        )

    async def ResendCode(
        self, request: pb.ResendCodeRequest, context: Context
    ) -> pb.StartAuthenticationResponse:
        resent = await self.enrollment.resend_code(request.session_handle)
        return pb.StartAuthenticationResponse(
            session_handle=resent.session_handle,
            code_expires_at=_timestamp(resent.code_expires_at),
            masked_email=resent.masked_email,
        )

    async def RevokeUserCertificates(
        self, request: pb.RevokeUserCertificatesRequest, context: Context
    ) -> pb.RevokeCertificateResponse:
        if self._user_revocation is None:
            raise Unavailable("revocation by master users is not configured on this server")
        cause = _CAUSE.get(request.cause)
        if cause is None:
            raise InvalidArgument(
                "cause must be PC_CHANGE or LOST_PC",
                reason=ErrorReason.INVALID_REASON,
                metadata={"field": "cause"},
            )
        records = await self._user_revocation.revoke(
            acting_user_id=_acting(request.acting_user_id), user_id=request.user_id, cause=cause
        )
        return pb.RevokeCertificateResponse(revocations=[_revocation(r) for r in records])


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
