"""Thin servicer: protobuf in, service call, protobuf out. Authorisation and error mapping
live in the interceptor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from cryptography.hazmat.primitives.serialization import Encoding
from google.protobuf.timestamp_pb2 import Timestamp

from ca_service.api import pb, pb_grpc
from ca_service.domain.records import CertificateRecord, CertificateStatus, KeySource, status_at
from ca_service.errors import InvalidArgument
from ca_service.ports import Clock
from ca_service.services.issuance import IssuanceService

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


class CertificateAuthorityServicer(pb_grpc.CertificateAuthorityServicer):
    def __init__(self, issuance: IssuanceService, clock: Clock) -> None:
        self._issuance = issuance
        self._clock = clock
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

    async def IssueCertificate(
        self, request: pb.IssueCertificateRequest, context: Context
    ) -> pb.IssueCertificateResponse:
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
