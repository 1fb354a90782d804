"""The gateway's settings: one frozen object from ``GATEWAY_*`` environment variables and an
optional TOML file (``GATEWAY_CONFIG_FILE``), each declared once in ``SETTINGS`` with its
default and description (``ca-gateway config-reference`` prints the table for the README).
The Redis URL, which may carry a password, can also come from a file
(``GATEWAY_REDIS_URL_FILE``) and is kept out of the repr."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ca_service.shared import settings as shared
from ca_service.shared.errors import ConfigError
from ca_service.shared.redis_url import check_redis_url
from ca_service.shared.settings import (
    Setting,
    SettingFactory,
    address,
    flag,
    positive_int,
    positive_number,
)
from gateway import card_headers
from gateway.card import DEFAULT_CARD_ATTRIBUTES, AttributeSource, parse_card_attributes
from gateway.client_address import Networks, parse_networks
from gateway.errors import GatewayConfigurationError
from gateway.routes import Mode, Route, parse_routes

__all__ = ["SETTINGS", "GatewaySettings", "configuration_reference", "load_settings"]


# No default: the gateway cannot start without it.
_setting = SettingFactory("GATEWAY_", required_without_default=True)

SETTINGS: tuple[Setting, ...] = (
    _setting("listen", "127.0.0.1:8443", "HTTPS address (HOST:PORT) browsers connect to.", address),
    _setting("workers", "1", "Worker processes sharing the port (SO_REUSEPORT).", positive_int),
    _setting(
        "max_connections",
        "10000",
        "Client connections per worker (TLS handshakes included), at most the open-file limit "
        "(RLIMIT_NOFILE, raised to its hard limit at start-up) less "
        "`GATEWAY_DESCRIPTOR_RESERVE`. When full, a new connection replaces the one that has "
        "waited longest for a request head; with none waiting it is closed at once.",
        positive_int,
    ),
    _setting(
        "head_timeout",
        "30",
        "Seconds from the accept (TLS handshake included), or from the end of the previous "
        "response on a kept-alive connection, until a whole request head has arrived; bytes "
        "trickling in do not extend it.",
        positive_number,
    ),
    _setting(
        "descriptor_reserve",
        "1024",
        "Open files kept free of client connections for upstream connections, gRPC and Redis "
        "(at most half of the limit).",
        positive_int,
    ),
    _setting(
        "tls_cert", None, "Server certificate chain (PEM), e.g. from `ca-service server-cert`."
    ),
    _setting("tls_key", None, "The server certificate's private key (PEM)."),
    _setting(
        "client_trust",
        None,
        "This CA's certificates (PEM), named in the TLS certificate request when "
        "`GATEWAY_CLIENT_CA_NAMES=1`; reloaded when it changes. Client certificates are "
        "checked per request against the issuing CA the gateway gets from the CA.",
    ),
    _setting("ca_address", "127.0.0.1:50051", "The CA's gRPC address."),
    _setting(
        "ca_credential_dir",
        None,
        "Directory with the gateway's gRPC client credential (cert.pem, key.pem, ca.pem), "
        "as written by `ca-service credential NAME --role gateway`.",
    ),
    _setting(
        "ca_server_name",
        "",
        "Name to check in the CA's gRPC server certificate, when not the address's host.",
    ),
    _setting(
        "crl_url",
        "",
        "The CA's full CRL (http://…/crl/issuing.crl), polled while the revocation stream is "
        "down; empty: no fallback.",
    ),
    _setting("upstream", "http://127.0.0.1:8081", "The protected application (http://HOST:PORT)."),
    _setting(
        "routes",
        "",
        "Further routes: entries `PREFIX MODE [UPSTREAM]` separated by commas or new lines; "
        "MODE `user` (this CA's users: certificate and login), `card` (an identity card's "
        "certificate, `GATEWAY_CARD_TRUST`) or `public` (no identity); UPSTREAM defaults to "
        "`GATEWAY_UPSTREAM`; the longest prefix wins; `/` is `GATEWAY_UPSTREAM` in mode "
        '`user` unless given (README, "Gateway routes").',
    ),
    _setting(
        "client_ca_names",
        "0",
        "1: the TLS certificate request names the CAs of `GATEWAY_CLIENT_TRUST` and "
        "`GATEWAY_CARD_TRUST` (browsers offer only their certificates); 0: it names none, so "
        "a browser offers every certificate and a wrong one gets a page saying why.",
        flag,
    ),
    _setting(
        "card_trust",
        "",
        "Identity card CA certificates (PEM) that `card` routes accept (SPEC D2); never this "
        "CA. Empty: no card routes.",
    ),
    _setting(
        "card_crl_urls",
        "",
        "The card CAs' CRLs (http://…, comma-separated), each held until its nextUpdate; a "
        "card CA without a current CRL has its certificates refused (503).",
    ),
    _setting(
        "card_crl_refresh",
        "600",
        "Seconds between polls of each card CRL (sooner when one reaches its nextUpdate).",
        positive_number,
    ),
    _setting(
        "card_attributes",
        DEFAULT_CARD_ATTRIBUTES,
        "Where a card certificate holds the name, address, birth_date and sex: "
        "`NAME=san:OID` (a subjectAltName otherName) or `NAME=subject:OID`; the default is "
        "the JPKI signing certificate's profile.",
        parse_card_attributes,
    ),
    _setting(
        "header_card_name", card_headers.CARD_NAME, "Upstream header: the card holder's name."
    ),
    _setting(
        "header_card_address", card_headers.CARD_ADDRESS, "Upstream header: the holder's address."
    ),
    _setting(
        "header_card_birth_date",
        card_headers.CARD_BIRTH_DATE,
        "Upstream header: the holder's date of birth (YYYY-MM-DD).",
    ),
    _setting("header_card_sex", card_headers.CARD_SEX, "Upstream header: the holder's sex code."),
    _setting(
        "header_card_fingerprint",
        card_headers.CARD_FINGERPRINT,
        "Upstream header: the card certificate's SHA-256 fingerprint (lower-case hex).",
    ),
    _setting(
        "upstream_connect_timeout", "5", "Seconds to connect to the upstream.", positive_number
    ),
    _setting(
        "upstream_timeout",
        "60",
        "Seconds the upstream may take to start its answer (504 after that).",
        positive_number,
    ),
    _setting("upstream_pool", "64", "Idle keep-alive connections kept per worker.", positive_int),
    _setting(
        "redis_url",
        "redis://127.0.0.1:6379/0",
        "Redis for sessions and the per-client limits (shared by workers and instances): the "
        "same forms as `CA_REDIS_URL`, Sentinel included (there `wait_replicas` applies to "
        "the end of a session).",
        check_redis_url,
        secret=True,
    ),
    _setting(
        "auth_rate_per_minute",
        "10",
        "Password and code checks (ログイン, ユーザー認証, 認証コード入力, 認証コードの再送, "
        "発行, マスターユーザー初期登録, パスワード変更) one client address may make per minute "
        "in the long run; beyond that a 429 page (token bucket in Redis, shared by every "
        "worker and instance).",
        positive_number,
    ),
    _setting(
        "auth_burst",
        "10",
        "How many of those checks one client address may make at once (the bucket's size).",
        positive_int,
    ),
    _setting(
        "trusted_proxies",
        "",
        "Reverse proxies in front of the gateway (comma-separated addresses or CIDR "
        "networks): only for a connection from one of these is the client address read from "
        "X-Forwarded-For. Empty: the TLS peer is the client.",
        parse_networks,
    ),
    _setting("session_idle", "1800", "Seconds of inactivity that end a session.", positive_int),
    _setting("session_absolute", "43200", "Seconds after which a session ends.", positive_int),
    _setting(
        "require_login",
        "1",
        "1: protected routes need the certificate and a password login; 0: certificate only.",
        flag,
    ),
    _setting(
        "max_staleness",
        "5",
        "Seconds without proof that the revocation view is current before protected "
        "requests are refused (fail closed).",
        positive_number,
    ),
    _setting(
        "user_cache_seconds",
        "2",
        "Seconds a user's record (role, organisation, lock state, last password change) is "
        "cached at most; the CA's announcements on the revocation stream drop it sooner.",
        positive_number,
    ),
    _setting("header_user_id", "x-user-id", "Upstream header carrying the user ID."),
    _setting("header_org_id", "x-org-id", "Upstream header carrying the organisation ID."),
    _setting("header_user_role", "x-user-role", "Upstream header carrying the role."),
    _setting("header_xfcc", "x-forwarded-client-cert", "Upstream header carrying the XFCC."),
    _setting("xfcc_by", "", "The By= element of the XFCC header (the gateway's URI), if any."),
    _setting("site_name", "電子証明書サービス", "Name shown on the screens."),
    _setting("log_level", "INFO", "Logging level."),
)


@dataclass(frozen=True)
class GatewaySettings:
    listen: tuple[str, int]
    workers: int
    max_connections: int
    head_timeout: float
    descriptor_reserve: int
    tls_cert: str
    tls_key: str
    client_trust: str
    ca_address: str
    ca_credential_dir: str
    ca_server_name: str
    crl_url: str
    upstream: str
    routes: str
    client_ca_names: bool
    card_trust: str
    card_crl_urls: str
    card_crl_refresh: float
    card_attributes: dict[str, AttributeSource]
    header_card_name: str
    header_card_address: str
    header_card_birth_date: str
    header_card_sex: str
    header_card_fingerprint: str
    upstream_connect_timeout: float
    upstream_timeout: float
    upstream_pool: int
    redis_url: str = field(repr=False)
    auth_rate_per_minute: float
    auth_burst: int
    trusted_proxies: Networks
    session_idle: int
    session_absolute: int
    require_login: bool
    max_staleness: float
    user_cache_seconds: float
    header_user_id: str
    header_org_id: str
    header_user_role: str
    header_xfcc: str
    xfcc_by: str
    site_name: str
    log_level: str

    @property
    def identity_header_names(self) -> dict[str, str]:
        return {
            "x-forwarded-client-cert": self.header_xfcc,
            "x-user-id": self.header_user_id,
            "x-org-id": self.header_org_id,
            "x-user-role": self.header_user_role,
        }

    @property
    def card_header_names(self) -> dict[str, str]:
        """Attribute (and ``fingerprint``) → upstream header name."""
        return {
            "name": self.header_card_name,
            "address": self.header_card_address,
            "birth_date": self.header_card_birth_date,
            "sex": self.header_card_sex,
            "fingerprint": self.header_card_fingerprint,
        }

    def route_list(self) -> tuple[Route, ...]:
        return parse_routes(self.routes, self.upstream)

    def card_crl_url_list(self) -> list[str]:
        return [url.strip() for url in self.card_crl_urls.split(",") if url.strip()]

    def paths(self) -> tuple[Path, Path, Path]:
        return Path(self.tls_cert), Path(self.tls_key), Path(self.client_trust)


def load_settings(environ: Mapping[str, str] | None = None) -> GatewaySettings:
    try:
        raw = shared.read_settings(SETTINGS, os.environ if environ is None else environ)
        settings = GatewaySettings(
            **{setting.name: raw.parsed(setting.name) for setting in SETTINGS}
        )
    except ConfigError as exc:
        raise GatewayConfigurationError(str(exc)) from None
    try:
        routes = settings.route_list()
    except ValueError as exc:
        raise GatewayConfigurationError(f"GATEWAY_ROUTES: {exc}") from None
    if any(route.mode is Mode.CARD for route in routes) and not settings.card_trust:
        raise GatewayConfigurationError("a card route needs GATEWAY_CARD_TRUST")
    if settings.card_trust and not settings.card_crl_url_list():
        raise GatewayConfigurationError(
            "GATEWAY_CARD_TRUST needs GATEWAY_CARD_CRL_URLS (card revocation is checked)"
        )
    return settings


def configuration_reference() -> str:
    """The Markdown table of every setting, for the README."""
    return shared.configuration_reference(SETTINGS)
