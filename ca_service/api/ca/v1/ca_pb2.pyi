import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CertificateStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CERTIFICATE_STATUS_UNSPECIFIED: _ClassVar[CertificateStatus]
    CERTIFICATE_STATUS_VALID: _ClassVar[CertificateStatus]
    CERTIFICATE_STATUS_EXPIRED: _ClassVar[CertificateStatus]
    CERTIFICATE_STATUS_REVOKED: _ClassVar[CertificateStatus]
    CERTIFICATE_STATUS_NOT_YET_VALID: _ClassVar[CertificateStatus]

class KeySource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_SOURCE_UNSPECIFIED: _ClassVar[KeySource]
    KEY_SOURCE_CSR: _ClassVar[KeySource]
    KEY_SOURCE_SERVER: _ClassVar[KeySource]

class UserRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USER_ROLE_UNSPECIFIED: _ClassVar[UserRole]
    USER_ROLE_MASTER: _ClassVar[UserRole]
    USER_ROLE_GENERAL: _ClassVar[UserRole]

class UserState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USER_STATE_UNSPECIFIED: _ClassVar[UserState]
    USER_STATE_ACTIVE: _ClassVar[UserState]
    USER_STATE_LOCKED: _ClassVar[UserState]
    USER_STATE_BLOCKED: _ClassVar[UserState]
CERTIFICATE_STATUS_UNSPECIFIED: CertificateStatus
CERTIFICATE_STATUS_VALID: CertificateStatus
CERTIFICATE_STATUS_EXPIRED: CertificateStatus
CERTIFICATE_STATUS_REVOKED: CertificateStatus
CERTIFICATE_STATUS_NOT_YET_VALID: CertificateStatus
KEY_SOURCE_UNSPECIFIED: KeySource
KEY_SOURCE_CSR: KeySource
KEY_SOURCE_SERVER: KeySource
USER_ROLE_UNSPECIFIED: UserRole
USER_ROLE_MASTER: UserRole
USER_ROLE_GENERAL: UserRole
USER_STATE_UNSPECIFIED: UserState
USER_STATE_ACTIVE: UserState
USER_STATE_LOCKED: UserState
USER_STATE_BLOCKED: UserState

class Certificate(_message.Message):
    __slots__ = ("serial_number", "fingerprint_sha256", "user_id", "organization", "status", "not_before", "not_after", "issued_at", "subject", "key_source", "der")
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_SHA256_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    KEY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    DER_FIELD_NUMBER: _ClassVar[int]
    serial_number: str
    fingerprint_sha256: str
    user_id: str
    organization: str
    status: CertificateStatus
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    issued_at: _timestamp_pb2.Timestamp
    subject: str
    key_source: KeySource
    der: bytes
    def __init__(self, serial_number: _Optional[str] = ..., fingerprint_sha256: _Optional[str] = ..., user_id: _Optional[str] = ..., organization: _Optional[str] = ..., status: _Optional[_Union[CertificateStatus, str]] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., subject: _Optional[str] = ..., key_source: _Optional[_Union[KeySource, str]] = ..., der: _Optional[bytes] = ...) -> None: ...

class SignCsrRequest(_message.Message):
    __slots__ = ("csr", "user_id", "organization")
    CSR_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    csr: bytes
    user_id: str
    organization: str
    def __init__(self, csr: _Optional[bytes] = ..., user_id: _Optional[str] = ..., organization: _Optional[str] = ...) -> None: ...

class SignCsrResponse(_message.Message):
    __slots__ = ("certificate",)
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ...) -> None: ...

class IssueCertificateRequest(_message.Message):
    __slots__ = ("user_id", "organization", "pkcs12_password", "issuance_ticket", "csr")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    PKCS12_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    ISSUANCE_TICKET_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization: str
    pkcs12_password: str
    issuance_ticket: str
    csr: bytes
    def __init__(self, user_id: _Optional[str] = ..., organization: _Optional[str] = ..., pkcs12_password: _Optional[str] = ..., issuance_ticket: _Optional[str] = ..., csr: _Optional[bytes] = ...) -> None: ...

class IssueCertificateResponse(_message.Message):
    __slots__ = ("certificate", "pkcs12", "file_name")
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    PKCS12_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    pkcs12: bytes
    file_name: str
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ..., pkcs12: _Optional[bytes] = ..., file_name: _Optional[str] = ...) -> None: ...

class GetCertificateRequest(_message.Message):
    __slots__ = ("serial_number", "fingerprint_sha256")
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_SHA256_FIELD_NUMBER: _ClassVar[int]
    serial_number: str
    fingerprint_sha256: str
    def __init__(self, serial_number: _Optional[str] = ..., fingerprint_sha256: _Optional[str] = ...) -> None: ...

class ListCertificatesRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ListCertificatesResponse(_message.Message):
    __slots__ = ("certificates",)
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    certificates: _containers.RepeatedCompositeFieldContainer[Certificate]
    def __init__(self, certificates: _Optional[_Iterable[_Union[Certificate, _Mapping]]] = ...) -> None: ...

class GetCaChainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCaChainResponse(_message.Message):
    __slots__ = ("certificates", "pem")
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    PEM_FIELD_NUMBER: _ClassVar[int]
    certificates: _containers.RepeatedScalarFieldContainer[bytes]
    pem: str
    def __init__(self, certificates: _Optional[_Iterable[bytes]] = ..., pem: _Optional[str] = ...) -> None: ...

class StartAuthenticationRequest(_message.Message):
    __slots__ = ("user_id", "password")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    password: str
    def __init__(self, user_id: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class StartAuthenticationResponse(_message.Message):
    __slots__ = ("session_handle", "code_expires_at", "masked_email")
    SESSION_HANDLE_FIELD_NUMBER: _ClassVar[int]
    CODE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MASKED_EMAIL_FIELD_NUMBER: _ClassVar[int]
    session_handle: str
    code_expires_at: _timestamp_pb2.Timestamp
    masked_email: str
    def __init__(self, session_handle: _Optional[str] = ..., code_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., masked_email: _Optional[str] = ...) -> None: ...

class VerifyCodeRequest(_message.Message):
    __slots__ = ("session_handle", "code")
    SESSION_HANDLE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    session_handle: str
    code: str
    def __init__(self, session_handle: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class VerifyCodeResponse(_message.Message):
    __slots__ = ("issuance_ticket", "ticket_expires_at", "user_id")
    ISSUANCE_TICKET_FIELD_NUMBER: _ClassVar[int]
    TICKET_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    issuance_ticket: str
    ticket_expires_at: _timestamp_pb2.Timestamp
    user_id: str
    def __init__(self, issuance_ticket: _Optional[str] = ..., ticket_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user_id: _Optional[str] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("user_id", "password")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    password: str
    def __init__(self, user_id: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("user_id", "organization_id", "organization_name", "role", "email", "state", "locked_until", "lock_count", "consecutive_failures", "created_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LOCKED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    LOCK_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    organization_name: str
    role: UserRole
    email: str
    state: UserState
    locked_until: _timestamp_pb2.Timestamp
    lock_count: int
    consecutive_failures: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., organization_name: _Optional[str] = ..., role: _Optional[_Union[UserRole, str]] = ..., email: _Optional[str] = ..., state: _Optional[_Union[UserState, str]] = ..., locked_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lock_count: _Optional[int] = ..., consecutive_failures: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Organization(_message.Message):
    __slots__ = ("organization_id", "name", "created_at")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    name: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, organization_id: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateOrganizationRequest(_message.Message):
    __slots__ = ("name", "organization_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    organization_id: str
    def __init__(self, name: _Optional[str] = ..., organization_id: _Optional[str] = ...) -> None: ...

class CreateOrganizationResponse(_message.Message):
    __slots__ = ("organization", "initial_password", "initial_password_expires_at")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PASSWORD_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    organization: Organization
    initial_password: str
    initial_password_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, organization: _Optional[_Union[Organization, _Mapping]] = ..., initial_password: _Optional[str] = ..., initial_password_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterMasterRequest(_message.Message):
    __slots__ = ("organization_id", "initial_password", "user_id", "password", "email")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    initial_password: str
    user_id: str
    password: str
    email: str
    def __init__(self, organization_id: _Optional[str] = ..., initial_password: _Optional[str] = ..., user_id: _Optional[str] = ..., password: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class CreateUserRequest(_message.Message):
    __slots__ = ("acting_user_id", "organization_id", "user_id", "email")
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    acting_user_id: str
    organization_id: str
    user_id: str
    email: str
    def __init__(self, acting_user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., user_id: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class CreateUserResponse(_message.Message):
    __slots__ = ("user", "initial_password")
    USER_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    user: User
    initial_password: str
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., initial_password: _Optional[str] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("user_id", "acting_user_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    acting_user_id: str
    def __init__(self, user_id: _Optional[str] = ..., acting_user_id: _Optional[str] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ("organization_id", "acting_user_id")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    acting_user_id: str
    def __init__(self, organization_id: _Optional[str] = ..., acting_user_id: _Optional[str] = ...) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[User]
    def __init__(self, users: _Optional[_Iterable[_Union[User, _Mapping]]] = ...) -> None: ...

class UnlockUserRequest(_message.Message):
    __slots__ = ("user_id", "acting_user_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    acting_user_id: str
    def __init__(self, user_id: _Optional[str] = ..., acting_user_id: _Optional[str] = ...) -> None: ...

class ResetPasswordRequest(_message.Message):
    __slots__ = ("user_id", "acting_user_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    acting_user_id: str
    def __init__(self, user_id: _Optional[str] = ..., acting_user_id: _Optional[str] = ...) -> None: ...

class ResetPasswordResponse(_message.Message):
    __slots__ = ("initial_password", "expires_at")
    INITIAL_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    initial_password: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, initial_password: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListMailRequest(_message.Message):
    __slots__ = ("status", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    limit: int
    def __init__(self, status: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class MailItem(_message.Message):
    __slots__ = ("id", "kind", "recipient", "subject", "status", "attempts", "created_at", "sent_at", "next_attempt_at", "last_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: str
    recipient: str
    subject: str
    status: str
    attempts: int
    created_at: _timestamp_pb2.Timestamp
    sent_at: _timestamp_pb2.Timestamp
    next_attempt_at: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[str] = ..., recipient: _Optional[str] = ..., subject: _Optional[str] = ..., status: _Optional[str] = ..., attempts: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class ListMailResponse(_message.Message):
    __slots__ = ("mail",)
    MAIL_FIELD_NUMBER: _ClassVar[int]
    mail: _containers.RepeatedCompositeFieldContainer[MailItem]
    def __init__(self, mail: _Optional[_Iterable[_Union[MailItem, _Mapping]]] = ...) -> None: ...

class RevokeCertificateRequest(_message.Message):
    __slots__ = ("serial_number", "user_id", "reason", "invalidity_date")
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INVALIDITY_DATE_FIELD_NUMBER: _ClassVar[int]
    serial_number: str
    user_id: str
    reason: str
    invalidity_date: _timestamp_pb2.Timestamp
    def __init__(self, serial_number: _Optional[str] = ..., user_id: _Optional[str] = ..., reason: _Optional[str] = ..., invalidity_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Revocation(_message.Message):
    __slots__ = ("sequence", "serial_number", "user_id", "revoked_at", "reason", "invalidity_date", "not_after")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INVALIDITY_DATE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    serial_number: str
    user_id: str
    revoked_at: _timestamp_pb2.Timestamp
    reason: str
    invalidity_date: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., serial_number: _Optional[str] = ..., user_id: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., invalidity_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RevokeCertificateResponse(_message.Message):
    __slots__ = ("revocations",)
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    revocations: _containers.RepeatedCompositeFieldContainer[Revocation]
    def __init__(self, revocations: _Optional[_Iterable[_Union[Revocation, _Mapping]]] = ...) -> None: ...

class WatchRevocationsRequest(_message.Message):
    __slots__ = ("since_sequence",)
    SINCE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    since_sequence: int
    def __init__(self, since_sequence: _Optional[int] = ...) -> None: ...

class WatchRevocationsResponse(_message.Message):
    __slots__ = ("revocations", "latest_sequence", "as_of", "changed_user_ids")
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    LATEST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CHANGED_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    revocations: _containers.RepeatedCompositeFieldContainer[Revocation]
    latest_sequence: int
    as_of: _timestamp_pb2.Timestamp
    changed_user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, revocations: _Optional[_Iterable[_Union[Revocation, _Mapping]]] = ..., latest_sequence: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., changed_user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("id", "at", "actor", "action", "user_id", "details", "prev_hash", "hash")
    ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    id: int
    at: _timestamp_pb2.Timestamp
    actor: str
    action: str
    user_id: str
    details: str
    prev_hash: str
    hash: str
    def __init__(self, id: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., user_id: _Optional[str] = ..., details: _Optional[str] = ..., prev_hash: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class ListAuditRequest(_message.Message):
    __slots__ = ("user_id", "action", "since", "until", "limit")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    action: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, user_id: _Optional[str] = ..., action: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListAuditResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ...) -> None: ...

class VerifyAuditRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyAuditResponse(_message.Message):
    __slots__ = ("intact", "rows", "first_broken_id", "problem")
    INTACT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    FIRST_BROKEN_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    intact: bool
    rows: int
    first_broken_id: int
    problem: str
    def __init__(self, intact: _Optional[bool] = ..., rows: _Optional[int] = ..., first_broken_id: _Optional[int] = ..., problem: _Optional[str] = ...) -> None: ...
