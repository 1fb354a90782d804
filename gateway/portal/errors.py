"""The portal's errors, in the gateway package's one hierarchy (:mod:`gateway.errors`):
each knows its HTTP answer; the application maps them to Japanese pages in one place."""

from __future__ import annotations

from gateway.errors import GatewayError

__all__ = [
    "CaRefused",
    "CardMismatch",
    "LinkRefused",
    "MalformedUpload",
    "PortalError",
    "PortalUnavailable",
    "StaleConfirmation",
    "UploadTooLarge",
]


class PortalError(GatewayError):
    http_status = 400


class PortalUnavailable(PortalError):
    """A peer with a known cause cannot answer (the CA, the SQL store, the disk): 503."""

    http_status = 503


class LinkRefused(PortalError):
    """The CA refused an e-mail link; ``reason`` is its ErrorReason name
    (EMAIL_LINK_EXPIRED, EMAIL_LINK_USED, EMAIL_LINK_UNKNOWN)."""

    http_status = 410

    def __init__(self, reason: str) -> None:
        super().__init__(f"e-mail link refused: {reason}")
        self.reason = reason


class CaRefused(PortalError):
    """The CA refused a call for a reason of the request (``reason``: its ErrorReason
    name, e.g. INVALID_EMAIL)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UploadTooLarge(PortalError):
    """More files or bytes than D3 allows; refused before the rest of the body is read.
    ``fields``: the form's text fields read before the refusal (they come before the files),
    so that the page can keep what was typed."""

    http_status = 413

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = dict(fields or {})


class MalformedUpload(PortalError):
    """Not a multipart form this portal sent (broken framing, too many fields)."""


class StaleConfirmation(PortalError):
    """The confirm page submitted is not the latest one of this session (the draft changed
    after it was shown)."""

    http_status = 409


class CardMismatch(PortalError):
    """The card certificate presented is not the one this session was bound to."""

    http_status = 403
