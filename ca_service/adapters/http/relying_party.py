"""What relying parties fetch over plain HTTP (SPEC F2): the CRLs at the URLs written in
every certificate (the issuing CA's base and delta CRLs, and the root's CRL named in the
issuing CA's certificate), the CA certificates (AIA caIssuers), and the OCSP responder."""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.utils import format_datetime
from typing import Protocol
from urllib.parse import unquote, urlsplit

from ca_service.adapters.http.router import Router
from ca_service.domain.records import CrlKind
from ca_service.pki.ocsp import error_response, plain_cert_id
from ca_service.ports import Clock
from ca_service.services.crl import CrlPublisher
from ca_service.services.ocsp import OcspAnswer, OcspResponder
from ca_service.shared.http.server import Request, Response

__all__ = ["OcspEndpoint", "RelyingPartyEndpoints"]


def _http_date(instant: datetime) -> str:
    return format_datetime(instant, usegmt=True)


class _Crl(Protocol):
    @property
    def number(self) -> int: ...
    @property
    def this_update(self) -> datetime: ...
    @property
    def next_update(self) -> datetime: ...
    @property
    def der(self) -> bytes: ...


class RelyingPartyEndpoints:
    def __init__(
        self,
        *,
        publisher: CrlPublisher,
        root_crl: Callable[[], _Crl | None],
        clock: Clock,
        crl_url: str,
        delta_crl_url: str,
        root_crl_url: str,
        ca_issuers_url: str,
        root_ca_issuers_url: str,
        issuing_der: bytes,
        root_der: bytes,
        cache_seconds: int = 60,
    ) -> None:
        self._publisher = publisher
        self._root_crl = root_crl
        self._clock = clock
        self._paths = {
            "full": urlsplit(crl_url).path,
            "delta": urlsplit(delta_crl_url).path,
            "root": urlsplit(root_crl_url).path,
        }
        self._issuers_paths = {
            "issuing": urlsplit(ca_issuers_url).path,
            "root": urlsplit(root_ca_issuers_url).path,
        }
        self._issuing_der = issuing_der
        self._root_der = root_der
        self._cache_seconds = cache_seconds

    def install(
        self,
        server: Router,
        ocsp: OcspResponder | None = None,
        ocsp_url: str = "http://localhost/ocsp",
    ) -> None:
        server.route("GET", self._paths["full"], lambda r: self._issuing_crl("full", r))
        server.route("GET", self._paths["delta"], lambda r: self._issuing_crl("delta", r))
        server.route("GET", self._paths["root"], lambda r: self._crl("root", self._root_crl(), r))
        server.route(
            "GET",
            self._issuers_paths["issuing"],
            lambda r: self._certificate(self._issuing_der, r),
        )
        server.route(
            "GET", self._issuers_paths["root"], lambda r: self._certificate(self._root_der, r)
        )
        if ocsp is not None:
            handler = OcspEndpoint(ocsp, self._clock, urlsplit(ocsp_url).path.rstrip("/"))
            server.route("POST", handler.path or "/", handler)
            server.route("GET", handler.path + "/", handler)

    def _issuing_crl(self, kind: str, request: Request) -> Response:
        return self._crl(kind, self._publisher.current.get(CrlKind(kind)), request)

    def _crl(self, kind: str, crl: _Crl | None, request: Request) -> Response:
        if crl is None:
            return Response(
                503,
                [("Content-Type", "text/plain"), ("Retry-After", "5")],
                b"this CRL is not available yet; try again shortly\n",
            )
        now = self._clock.now()
        # Caches may keep it a short while, but never past nextUpdate.
        max_age = max(0, min(self._cache_seconds, int((crl.next_update - now).total_seconds())))
        etag = f'"{kind}-{crl.number}"'
        headers = [
            ("Content-Type", "application/pkix-crl"),
            ("ETag", etag),
            ("Last-Modified", _http_date(crl.this_update)),
            ("Expires", _http_date(crl.next_update)),
            ("Cache-Control", f"public, max-age={max_age}, no-transform, must-revalidate"),
        ]
        if request.head.get("if-none-match") == etag:
            return Response(304, headers)
        return Response(200, headers, crl.der)

    def _certificate(self, der: bytes, request: Request) -> Response:
        etag = '"' + hashlib.sha256(der).hexdigest()[:32] + '"'
        headers = [
            ("Content-Type", "application/pkix-cert"),
            ("ETag", etag),
            ("Cache-Control", "public, max-age=86400"),
        ]
        if request.head.get("if-none-match") == etag:
            return Response(304, headers)
        return Response(200, headers, der)


class OcspEndpoint:
    """POST with the DER request as body, or GET with it base64-encoded in the path
    (RFC 6960 A.1, RFC 5019 5). Answers are always HTTP 200 with an OCSP response, even
    for a malformed request (which gets OCSP's own malformedRequest).

    The hot path (a repeated GET for a pre-signed answer) decodes nothing and formats no
    dates: recent paths map to request DER, and each answer's fixed headers are rendered
    once and kept as long as the responder keeps the answer.
    """

    # Bounds the path memo's memory (a few MB) whatever requests arrive; a plain request's
    # path is about 150 characters.
    _MAX_REMEMBERED_PATHS = 10_000
    _MAX_REMEMBERED_PATH_LENGTH = 512

    def __init__(self, responder: OcspResponder, clock: Clock, path: str) -> None:
        self._responder = responder
        self._clock = clock
        self.path = path
        # GET path → (request DER, its CertID when the request has the plain shape).
        self._paths: dict[str, tuple[bytes, bytes | None]] = {}
        self._headers: weakref.WeakKeyDictionary[OcspAnswer, _Rendered] = (
            weakref.WeakKeyDictionary()
        )

    def _request_der(self, request: Request) -> tuple[bytes, bytes | None] | None:
        if request.method == "POST":
            return request.content, plain_cert_id(request.content)
        target = request.target
        known = self._paths.get(target)
        if known is not None:
            return known
        encoded = unquote(request.path[len(self.path) + 1 :])
        try:
            der = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (ValueError, binascii.Error):
            return None
        decoded = der, plain_cert_id(der)
        if len(target) <= self._MAX_REMEMBERED_PATH_LENGTH:
            if len(self._paths) >= self._MAX_REMEMBERED_PATHS:
                self._paths.clear()
            self._paths[target] = decoded
        return decoded

    def __call__(self, request: Request) -> Response | Awaitable[Response]:
        decoded = self._request_der(request)
        if decoded is None:
            return self._response(OcspAnswer(error_response("malformed_request")), request)
        der, cert_id = decoded
        if cert_id is not None:
            answer = self._responder.cached_answer(cert_id)
            if answer is not None:
                return self._response(answer, request)
        return self._respond(der, request)

    async def _respond(self, der: bytes, request: Request) -> Response:
        return self._response(await self._responder.respond(der), request)

    def _rendered(self, answer: OcspAnswer) -> _Rendered:
        remembered = self._headers.get(answer)
        if remembered is not None:
            return remembered
        assert answer.this_update is not None and answer.next_update is not None
        etag = '"' + hashlib.sha1(answer.body, usedforsecurity=False).hexdigest() + '"'
        headers = [
            ("Content-Type", "application/ocsp-response"),
            ("Last-Modified", _http_date(answer.this_update)),
            ("Expires", _http_date(answer.next_update)),
            ("ETag", etag),
        ]
        rendered = _Rendered(headers, etag, answer.next_update.timestamp())
        self._headers[answer] = rendered
        return rendered

    def _response(self, answer: OcspAnswer, request: Request) -> Response:
        if answer.this_update is None or answer.next_update is None:
            return Response(
                200,
                [("Content-Type", "application/ocsp-response"), ("Cache-Control", "no-store")],
                answer.body,
            )
        rendered = self._rendered(answer)
        headers = rendered.now(int(time.time()))
        if request.method == "GET" and request.head.get("if-none-match") == rendered.etag:
            return Response(304, headers, reuse=rendered.key)
        return Response(200, headers, answer.body, reuse=rendered.key)


class _Rendered:
    """An answer's headers: the fixed ones rendered once, Cache-Control once per second."""

    __slots__ = ("_fixed", "_headers", "_second", "etag", "expires", "key")

    def __init__(self, fixed: list[tuple[str, str]], etag: str, expires: float) -> None:
        self._fixed = fixed
        self.etag = etag
        self.expires = expires
        self._second = -1
        self._headers = fixed
        # Names these headers for the server's reuse of the encoded head (Response.reuse).
        self.key: tuple[object, int] = (self, -1)

    def now(self, second: int) -> list[tuple[str, str]]:
        """The headers for an answer sent in this second (shared: never to be changed)."""
        if second != self._second:
            # RFC 5019 6.2: let caches keep it until nextUpdate and no longer.
            max_age = max(0, int(self.expires - second))
            cache = f"max-age={max_age}, public, no-transform, must-revalidate"
            self._headers = [*self._fixed, ("Cache-Control", cache)]
            self._second = second
            self.key = (self, second)
        return self._headers
