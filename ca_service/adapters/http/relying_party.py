"""What relying parties fetch over plain HTTP (SPEC F2): the CRLs at the URLs written in
every certificate, the CA certificates (AIA caIssuers), and the OCSP responder."""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Awaitable
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

from ca_service.adapters.http.server import HttpServer, Request, Response
from ca_service.adapters.sql.crls import PublishedCrl
from ca_service.pki.ocsp import error_response
from ca_service.ports import Clock
from ca_service.services.crl import CrlPublisher
from ca_service.services.ocsp import OcspAnswer, OcspResponder

__all__ = ["OcspEndpoint", "RelyingPartyEndpoints"]


def _http_date(instant: datetime) -> str:
    return format_datetime(instant, usegmt=True)


class RelyingPartyEndpoints:
    def __init__(
        self,
        *,
        publisher: CrlPublisher,
        clock: Clock,
        crl_url: str,
        delta_crl_url: str,
        ca_issuers_url: str,
        issuing_der: bytes,
        root_der: bytes,
        cache_seconds: int = 60,
    ) -> None:
        self._publisher = publisher
        self._clock = clock
        self._paths = {"full": urlsplit(crl_url).path, "delta": urlsplit(delta_crl_url).path}
        self._issuers_path = urlsplit(ca_issuers_url).path
        self._issuing_der = issuing_der
        self._root_der = root_der
        self._cache_seconds = cache_seconds

    def install(
        self,
        server: HttpServer,
        ocsp: OcspResponder | None = None,
        ocsp_url: str = "http://localhost/ocsp",
    ) -> None:
        server.route("GET", self._paths["full"], lambda r: self._crl("full", r))
        server.route("GET", self._paths["delta"], lambda r: self._crl("delta", r))
        server.route("GET", self._issuers_path, lambda r: self._certificate(self._issuing_der, r))
        root_path = self._issuers_path.rsplit("/", 1)[0] + "/root.der"
        server.route("GET", root_path, lambda r: self._certificate(self._root_der, r))
        if ocsp is not None:
            handler = OcspEndpoint(ocsp, self._clock, urlsplit(ocsp_url).path.rstrip("/"))
            server.route("POST", handler.path or "/", handler)
            server.route("GET", handler.path + "/", handler)

    def _crl(self, kind: str, request: Request) -> Response:
        crl: PublishedCrl | None = self._publisher.current.get(kind)
        if crl is None:
            return Response(
                503,
                b"the CRL is being built; try again shortly\n",
                [("Content-Type", "text/plain"), ("Retry-After", "5")],
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
        if request.headers.get("if-none-match") == etag:
            return Response(304, b"", headers)
        return Response(200, crl.der, headers)

    def _certificate(self, der: bytes, request: Request) -> Response:
        etag = '"' + hashlib.sha256(der).hexdigest()[:32] + '"'
        headers = [
            ("Content-Type", "application/pkix-cert"),
            ("ETag", etag),
            ("Cache-Control", "public, max-age=86400"),
        ]
        if request.headers.get("if-none-match") == etag:
            return Response(304, b"", headers)
        return Response(200, der, headers)


class OcspEndpoint:
    """POST with the DER request as body, or GET with it base64-encoded in the path
    (RFC 6960 A.1, RFC 5019 5). Answers are always HTTP 200 with an OCSP response, even
    for a malformed request (which gets OCSP's own malformedRequest).

    The hot path (a repeated GET for a pre-signed answer) decodes nothing and formats no
    dates: paths map to request DER, and each answer's fixed headers are rendered once.
    """

    _MAX_REMEMBERED_PATHS = 100_000

    def __init__(self, responder: OcspResponder, clock: Clock, path: str) -> None:
        self._responder = responder
        self._clock = clock
        self.path = path
        self._paths: dict[str, bytes] = {}
        self._headers: dict[int, tuple[OcspAnswer, list[tuple[str, str]], str, float]] = {}

    def _request_der(self, request: Request) -> bytes | None:
        if request.method == "POST":
            return request.body
        known = self._paths.get(request.path)
        if known is not None:
            return known
        encoded = unquote(request.path.split("?", 1)[0][len(self.path) + 1 :])
        try:
            der = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (ValueError, binascii.Error):
            return None
        if len(self._paths) >= self._MAX_REMEMBERED_PATHS:
            self._paths.clear()
        self._paths[request.path] = der
        return der

    def __call__(self, request: Request) -> Response | Awaitable[Response]:
        der = self._request_der(request)
        if der is None:
            return self._response(OcspAnswer(error_response("malformed_request")), request)
        answer = self._responder.cached(der)
        if answer is not None:
            return self._response(answer, request)
        return self._respond(der, request)

    async def _respond(self, der: bytes, request: Request) -> Response:
        return self._response(await self._responder.respond(der), request)

    def _fixed_headers(self, answer: OcspAnswer) -> tuple[list[tuple[str, str]], str, float]:
        remembered = self._headers.get(id(answer))
        if remembered is not None and remembered[0] is answer:
            return remembered[1], remembered[2], remembered[3]
        assert answer.this_update is not None and answer.next_update is not None
        etag = '"' + hashlib.sha1(answer.body, usedforsecurity=False).hexdigest() + '"'
        headers = [
            ("Content-Type", "application/ocsp-response"),
            ("Last-Modified", _http_date(answer.this_update)),
            ("Expires", _http_date(answer.next_update)),
            ("ETag", etag),
        ]
        if len(self._headers) >= self._MAX_REMEMBERED_PATHS:
            self._headers.clear()
        expires = answer.next_update.timestamp()
        self._headers[id(answer)] = (answer, headers, etag, expires)
        return headers, etag, expires

    def _response(self, answer: OcspAnswer, request: Request) -> Response:
        if answer.this_update is None or answer.next_update is None:
            return Response(
                200,
                answer.body,
                [("Content-Type", "application/ocsp-response"), ("Cache-Control", "no-store")],
            )
        fixed, etag, expires = self._fixed_headers(answer)
        # RFC 5019 6.2: let caches keep it until nextUpdate and no longer.
        max_age = max(0, int(expires - time.time()))
        headers = [
            *fixed,
            ("Cache-Control", f"max-age={max_age}, public, no-transform, must-revalidate"),
        ]
        if request.method == "GET" and request.headers.get("if-none-match") == etag:
            return Response(304, b"", headers)
        return Response(200, answer.body, headers)
