"""The portal's side of the CA's gRPC API (credential role ``portal``): registration links,
their confirmation, the completion mail, and the link's validity from the CA's rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ca_service.api import pb
from ca_service.client import api_error, stub
from gateway.ca_client import reason_of
from gateway.portal.errors import CaRefused, LinkRefused, PortalError, PortalUnavailable
from gateway.web.messages import hours_text

__all__ = ["GrpcPortalCa"]

_LINK_REASONS = {"EMAIL_LINK_EXPIRED", "EMAIL_LINK_USED", "EMAIL_LINK_UNKNOWN"}
_UNAVAILABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class GrpcPortalCa:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = 15.0) -> None:
        self._stub = stub(channel)
        self._timeout = timeout
        self._validity: str | None = None

    async def _call(self, method: str, request: object) -> Any:
        try:
            return await getattr(self._stub, method)(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            error = api_error(exc)
            if error.code in _UNAVAILABLE:
                raise PortalUnavailable(f"the CA is unavailable: {error.message}") from None
            reason = reason_of(error.reason, error.code).name
            if reason in _LINK_REASONS:
                raise LinkRefused(reason) from None
            if reason == "STORE_UNAVAILABLE" or reason.endswith("_UNAVAILABLE"):
                raise PortalUnavailable(f"the CA cannot answer: {reason}") from None
            raise CaRefused(reason, f"the CA refused {method}: {reason}: {error.message}") from None

    async def request_registration(self, address: str, link_base_url: str) -> None:
        await self._call(
            "RequestEmailVerification",
            pb.RequestEmailVerificationRequest(
                purpose=pb.EMAIL_PURPOSE_PORTAL_REGISTRATION,
                address=address,
                link_base_url=link_base_url,
            ),
        )

    async def check_registration(self, token: str) -> str:
        return await self._open(token, check_only=True)

    async def confirm_registration(self, token: str) -> str:
        return await self._open(token, check_only=False)

    async def _open(self, token: str, *, check_only: bool) -> str:
        if not token:
            raise LinkRefused("EMAIL_LINK_UNKNOWN")
        answer = await self._call(
            "ConfirmEmailVerification",
            pb.ConfirmEmailVerificationRequest(token=token, check_only=check_only),
        )
        if answer.purpose != pb.EMAIL_PURPOSE_PORTAL_REGISTRATION:
            raise LinkRefused("EMAIL_LINK_UNKNOWN")
        return str(answer.address)

    async def send_completion_mail(
        self, address: str, receipt_number: str, submitted_at: datetime
    ) -> None:
        stamp = Timestamp()
        stamp.FromDatetime(submitted_at)
        await self._call(
            "SendProcedureCompletionMail",
            pb.SendProcedureCompletionMailRequest(
                address=address, receipt_number=receipt_number, submitted_at=stamp
            ),
        )

    async def link_validity_text(self) -> str:
        if self._validity is None:
            try:
                rules = await self._call("GetRules", pb.GetRulesRequest())
            except PortalError:
                return ""
            if not rules.HasField("email_link_validity"):
                return ""
            self._validity = hours_text(rules.email_link_validity.ToTimedelta())
        return self._validity
