"""What relying parties fetch over plain HTTP (SPEC F2): the CRLs at the URLs written in
every certificate, the CA certificates (AIA caIssuers), and the OCSP responder."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from ca_service.adapters.http.server import HttpServer, Request, Response
from ca_service.adapters.sql.crls import PublishedCrl
from ca_service.ports import Clock
from ca_service.services.crl import CrlPublisher

__all__ = ["RelyingPartyEndpoints"]

OcspHandler = Callable[[Request], Awaitable[Response]]


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
        self, server: HttpServer, ocsp: OcspHandler | None = None, ocsp_path: str = "/ocsp"
    ) -> None:
        server.route("GET", self._paths["full"], lambda r: self._crl("full", r))
        server.route("GET", self._paths["delta"], lambda r: self._crl("delta", r))
        server.route("GET", self._issuers_path, lambda r: self._certificate(self._issuing_der, r))
        root_path = self._issuers_path.rsplit("/", 1)[0] + "/root.der"
        server.route("GET", root_path, lambda r: self._certificate(self._root_der, r))
        if ocsp is not None:
            server.route("POST", ocsp_path, ocsp)
            server.route("GET", ocsp_path.rstrip("/") + "/", ocsp)

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
