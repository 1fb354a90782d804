import datetime

from google.protobuf import duration_pb2 as _duration_pb2
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

class CertificateHolding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CERTIFICATE_HOLDING_UNSPECIFIED: _ClassVar[CertificateHolding]
    CERTIFICATE_HOLDING_VALID: _ClassVar[CertificateHolding]
    CERTIFICATE_HOLDING_REVOKED: _ClassVar[CertificateHolding]
    CERTIFICATE_HOLDING_EXPIRED: _ClassVar[CertificateHolding]
    CERTIFICATE_HOLDING_NONE: _ClassVar[CertificateHolding]

class RevocationCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_CAUSE_UNSPECIFIED: _ClassVar[RevocationCause]
    REVOCATION_CAUSE_PC_CHANGE: _ClassVar[RevocationCause]
    REVOCATION_CAUSE_LOST_PC: _ClassVar[RevocationCause]

class EmailPurpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMAIL_PURPOSE_UNSPECIFIED: _ClassVar[EmailPurpose]
    EMAIL_PURPOSE_USER_EMAIL_CHANGE: _ClassVar[EmailPurpose]
    EMAIL_PURPOSE_PORTAL_REGISTRATION: _ClassVar[EmailPurpose]

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    INVALID_ARGUMENT: _ClassVar[ErrorReason]
    INVALID_CSR: _ClassVar[ErrorReason]
    INVALID_USER_ID: _ClassVar[ErrorReason]
    INVALID_PASSWORD: _ClassVar[ErrorReason]
    INVALID_EMAIL: _ClassVar[ErrorReason]
    INVALID_ORGANIZATION: _ClassVar[ErrorReason]
    INVALID_ORGANIZATION_ID: _ClassVar[ErrorReason]
    INVALID_REASON: _ClassVar[ErrorReason]
    ORGANIZATION_MISMATCH: _ClassVar[ErrorReason]
    CODE_INVALID: _ClassVar[ErrorReason]
    EMAIL_UNCHANGED: _ClassVar[ErrorReason]
    UNAUTHENTICATED: _ClassVar[ErrorReason]
    INVALID_CREDENTIALS: _ClassVar[ErrorReason]
    PERMISSION_DENIED: _ClassVar[ErrorReason]
    NOT_FOUND: _ClassVar[ErrorReason]
    USER_NOT_FOUND: _ClassVar[ErrorReason]
    ORGANIZATION_NOT_FOUND: _ClassVar[ErrorReason]
    CERTIFICATE_NOT_FOUND: _ClassVar[ErrorReason]
    EMAIL_LINK_UNKNOWN: _ClassVar[ErrorReason]
    ALREADY_EXISTS: _ClassVar[ErrorReason]
    USER_EXISTS: _ClassVar[ErrorReason]
    ORGANIZATION_EXISTS: _ClassVar[ErrorReason]
    ALREADY_REVOKED: _ClassVar[ErrorReason]
    CA_EXISTS: _ClassVar[ErrorReason]
    CREDENTIAL_EXISTS: _ClassVar[ErrorReason]
    FAILED_PRECONDITION: _ClassVar[ErrorReason]
    LOCKED: _ClassVar[ErrorReason]
    BLOCKED: _ClassVar[ErrorReason]
    ALREADY_ISSUED: _ClassVar[ErrorReason]
    CODE_EXPIRED: _ClassVar[ErrorReason]
    TICKET_INVALID: _ClassVar[ErrorReason]
    INITIAL_PASSWORD_USED: _ClassVar[ErrorReason]
    SCHEMA_TOO_NEW: _ClassVar[ErrorReason]
    EMAIL_LINK_EXPIRED: _ClassVar[ErrorReason]
    EMAIL_LINK_USED: _ClassVar[ErrorReason]
    RESOURCE_EXHAUSTED: _ClassVar[ErrorReason]
    BUSY: _ClassVar[ErrorReason]
    UNAVAILABLE: _ClassVar[ErrorReason]
    STORE_UNAVAILABLE: _ClassVar[ErrorReason]
    REDIS_UNAVAILABLE: _ClassVar[ErrorReason]
    SERIAL_CONFLICT: _ClassVar[ErrorReason]
    INTERNAL: _ClassVar[ErrorReason]
    CONFIGURATION: _ClassVar[ErrorReason]
    PASSWORD_UNCHANGED: _ClassVar[ErrorReason]
    PASSWORD_CHANGE_REQUIRED: _ClassVar[ErrorReason]
    RESEND_LIMITED: _ClassVar[ErrorReason]
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
CERTIFICATE_HOLDING_UNSPECIFIED: CertificateHolding
CERTIFICATE_HOLDING_VALID: CertificateHolding
CERTIFICATE_HOLDING_REVOKED: CertificateHolding
CERTIFICATE_HOLDING_EXPIRED: CertificateHolding
CERTIFICATE_HOLDING_NONE: CertificateHolding
REVOCATION_CAUSE_UNSPECIFIED: RevocationCause
REVOCATION_CAUSE_PC_CHANGE: RevocationCause
REVOCATION_CAUSE_LOST_PC: RevocationCause
EMAIL_PURPOSE_UNSPECIFIED: EmailPurpose
EMAIL_PURPOSE_USER_EMAIL_CHANGE: EmailPurpose
EMAIL_PURPOSE_PORTAL_REGISTRATION: EmailPurpose
ERROR_REASON_UNSPECIFIED: ErrorReason
INVALID_ARGUMENT: ErrorReason
INVALID_CSR: ErrorReason
INVALID_USER_ID: ErrorReason
INVALID_PASSWORD: ErrorReason
INVALID_EMAIL: ErrorReason
INVALID_ORGANIZATION: ErrorReason
INVALID_ORGANIZATION_ID: ErrorReason
INVALID_REASON: ErrorReason
ORGANIZATION_MISMATCH: ErrorReason
CODE_INVALID: ErrorReason
EMAIL_UNCHANGED: ErrorReason
UNAUTHENTICATED: ErrorReason
INVALID_CREDENTIALS: ErrorReason
PERMISSION_DENIED: ErrorReason
NOT_FOUND: ErrorReason
USER_NOT_FOUND: ErrorReason
ORGANIZATION_NOT_FOUND: ErrorReason
CERTIFICATE_NOT_FOUND: ErrorReason
EMAIL_LINK_UNKNOWN: ErrorReason
ALREADY_EXISTS: ErrorReason
USER_EXISTS: ErrorReason
ORGANIZATION_EXISTS: ErrorReason
ALREADY_REVOKED: ErrorReason
CA_EXISTS: ErrorReason
CREDENTIAL_EXISTS: ErrorReason
FAILED_PRECONDITION: ErrorReason
LOCKED: ErrorReason
BLOCKED: ErrorReason
ALREADY_ISSUED: ErrorReason
CODE_EXPIRED: ErrorReason
TICKET_INVALID: ErrorReason
INITIAL_PASSWORD_USED: ErrorReason
SCHEMA_TOO_NEW: ErrorReason
EMAIL_LINK_EXPIRED: ErrorReason
EMAIL_LINK_USED: ErrorReason
RESOURCE_EXHAUSTED: ErrorReason
BUSY: ErrorReason
UNAVAILABLE: ErrorReason
STORE_UNAVAILABLE: ErrorReason
REDIS_UNAVAILABLE: ErrorReason
SERIAL_CONFLICT: ErrorReason
INTERNAL: ErrorReason
CONFIGURATION: ErrorReason
PASSWORD_UNCHANGED: ErrorReason
PASSWORD_CHANGE_REQUIRED: ErrorReason
RESEND_LIMITED: ErrorReason

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
    __slots__ = ("csr", "user_id", "organization", "override_renewal_window")
    CSR_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_RENEWAL_WINDOW_FIELD_NUMBER: _ClassVar[int]
    csr: bytes
    user_id: str
    organization: str
    override_renewal_window: bool
    def __init__(self, csr: _Optional[bytes] = ..., user_id: _Optional[str] = ..., organization: _Optional[str] = ..., override_renewal_window: _Optional[bool] = ...) -> None: ...

class SignCsrResponse(_message.Message):
    __slots__ = ("certificate",)
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ...) -> None: ...

class IssueCertificateRequest(_message.Message):
    __slots__ = ("user_id", "organization", "pkcs12_password", "issuance_ticket", "csr", "override_renewal_window")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    PKCS12_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    ISSUANCE_TICKET_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_RENEWAL_WINDOW_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization: str
    pkcs12_password: str
    issuance_ticket: str
    csr: bytes
    override_renewal_window: bool
    def __init__(self, user_id: _Optional[str] = ..., organization: _Optional[str] = ..., pkcs12_password: _Optional[str] = ..., issuance_ticket: _Optional[str] = ..., csr: _Optional[bytes] = ..., override_renewal_window: _Optional[bool] = ...) -> None: ...

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

class GetRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Rules(_message.Message):
    __slots__ = ("user_id_min_length", "user_id_max_length", "password_min_length", "password_max_length", "code_digits", "code_validity", "failures_to_lock", "lock_duration", "locks_to_block", "certificate_validity_days", "renewal_window_days", "email_link_validity", "resend_interval", "resends_per_window", "resend_window")
    USER_ID_MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    USER_ID_MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CODE_DIGITS_FIELD_NUMBER: _ClassVar[int]
    CODE_VALIDITY_FIELD_NUMBER: _ClassVar[int]
    FAILURES_TO_LOCK_FIELD_NUMBER: _ClassVar[int]
    LOCK_DURATION_FIELD_NUMBER: _ClassVar[int]
    LOCKS_TO_BLOCK_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_VALIDITY_DAYS_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    EMAIL_LINK_VALIDITY_FIELD_NUMBER: _ClassVar[int]
    RESEND_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    RESENDS_PER_WINDOW_FIELD_NUMBER: _ClassVar[int]
    RESEND_WINDOW_FIELD_NUMBER: _ClassVar[int]
    user_id_min_length: int
    user_id_max_length: int
    password_min_length: int
    password_max_length: int
    code_digits: int
    code_validity: _duration_pb2.Duration
    failures_to_lock: int
    lock_duration: _duration_pb2.Duration
    locks_to_block: int
    certificate_validity_days: int
    renewal_window_days: int
    email_link_validity: _duration_pb2.Duration
    resend_interval: _duration_pb2.Duration
    resends_per_window: int
    resend_window: _duration_pb2.Duration
    def __init__(self, user_id_min_length: _Optional[int] = ..., user_id_max_length: _Optional[int] = ..., password_min_length: _Optional[int] = ..., password_max_length: _Optional[int] = ..., code_digits: _Optional[int] = ..., code_validity: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., failures_to_lock: _Optional[int] = ..., lock_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., locks_to_block: _Optional[int] = ..., certificate_validity_days: _Optional[int] = ..., renewal_window_days: _Optional[int] = ..., email_link_validity: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., resend_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., resends_per_window: _Optional[int] = ..., resend_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("user_id", "organization_id", "organization_name", "role", "email", "state", "locked_until", "lock_count", "consecutive_failures", "created_at", "certificate", "password_change_required", "password_changed_at")
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
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_CHANGE_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
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
    certificate: CertificateSummary
    password_change_required: bool
    password_changed_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., organization_name: _Optional[str] = ..., role: _Optional[_Union[UserRole, str]] = ..., email: _Optional[str] = ..., state: _Optional[_Union[UserState, str]] = ..., locked_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lock_count: _Optional[int] = ..., consecutive_failures: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., certificate: _Optional[_Union[CertificateSummary, _Mapping]] = ..., password_change_required: _Optional[bool] = ..., password_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CertificateSummary(_message.Message):
    __slots__ = ("holding", "serial_number", "not_after", "renewal_opens_at", "renewal_open")
    HOLDING_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_OPENS_AT_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_OPEN_FIELD_NUMBER: _ClassVar[int]
    holding: CertificateHolding
    serial_number: str
    not_after: _timestamp_pb2.Timestamp
    renewal_opens_at: _timestamp_pb2.Timestamp
    renewal_open: bool
    def __init__(self, holding: _Optional[_Union[CertificateHolding, str]] = ..., serial_number: _Optional[str] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., renewal_opens_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., renewal_open: _Optional[bool] = ...) -> None: ...

class ChangePasswordRequest(_message.Message):
    __slots__ = ("user_id", "current_password", "new_password")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    current_password: str
    new_password: str
    def __init__(self, user_id: _Optional[str] = ..., current_password: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

class ResendCodeRequest(_message.Message):
    __slots__ = ("session_handle",)
    SESSION_HANDLE_FIELD_NUMBER: _ClassVar[int]
    session_handle: str
    def __init__(self, session_handle: _Optional[str] = ...) -> None: ...

class RevokeUserCertificatesRequest(_message.Message):
    __slots__ = ("acting_user_id", "user_id", "cause")
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    acting_user_id: str
    user_id: str
    cause: RevocationCause
    def __init__(self, acting_user_id: _Optional[str] = ..., user_id: _Optional[str] = ..., cause: _Optional[_Union[RevocationCause, str]] = ...) -> None: ...

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

class RequestEmailVerificationRequest(_message.Message):
    __slots__ = ("purpose", "user_id", "address", "link_base_url")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LINK_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    purpose: EmailPurpose
    user_id: str
    address: str
    link_base_url: str
    def __init__(self, purpose: _Optional[_Union[EmailPurpose, str]] = ..., user_id: _Optional[str] = ..., address: _Optional[str] = ..., link_base_url: _Optional[str] = ...) -> None: ...

class RequestEmailVerificationResponse(_message.Message):
    __slots__ = ("expires_at", "masked_address")
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MASKED_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    expires_at: _timestamp_pb2.Timestamp
    masked_address: str
    def __init__(self, expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., masked_address: _Optional[str] = ...) -> None: ...

class ConfirmEmailVerificationRequest(_message.Message):
    __slots__ = ("token", "check_only")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHECK_ONLY_FIELD_NUMBER: _ClassVar[int]
    token: str
    check_only: bool
    def __init__(self, token: _Optional[str] = ..., check_only: _Optional[bool] = ...) -> None: ...

class ConfirmEmailVerificationResponse(_message.Message):
    __slots__ = ("purpose", "address", "user_id")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    purpose: EmailPurpose
    address: str
    user_id: str
    def __init__(self, purpose: _Optional[_Union[EmailPurpose, str]] = ..., address: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class SendProcedureCompletionMailRequest(_message.Message):
    __slots__ = ("address", "receipt_number", "submitted_at")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    address: str
    receipt_number: str
    submitted_at: _timestamp_pb2.Timestamp
    def __init__(self, address: _Optional[str] = ..., receipt_number: _Optional[str] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SendProcedureCompletionMailResponse(_message.Message):
    __slots__ = ("queued",)
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    queued: bool
    def __init__(self, queued: _Optional[bool] = ...) -> None: ...
