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
CERTIFICATE_STATUS_UNSPECIFIED: CertificateStatus
CERTIFICATE_STATUS_VALID: CertificateStatus
CERTIFICATE_STATUS_EXPIRED: CertificateStatus
CERTIFICATE_STATUS_REVOKED: CertificateStatus
CERTIFICATE_STATUS_NOT_YET_VALID: CertificateStatus
KEY_SOURCE_UNSPECIFIED: KeySource
KEY_SOURCE_CSR: KeySource
KEY_SOURCE_SERVER: KeySource

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
    __slots__ = ("user_id", "organization", "pkcs12_password")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    PKCS12_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization: str
    pkcs12_password: str
    def __init__(self, user_id: _Optional[str] = ..., organization: _Optional[str] = ..., pkcs12_password: _Optional[str] = ...) -> None: ...

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
