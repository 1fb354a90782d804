"""The gateway's settings: one frozen object from ``GATEWAY_*`` environment variables, each
declared once in ``SETTINGS`` with its default and description (``ca-gateway
config-reference`` prints the table for the README)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ca_service.config import flag, positive_int
from gateway.errors import GatewayConfigurationError

__all__ = ["SETTINGS", "GatewaySettings", "configuration_reference", "load_settings"]


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be a positive number")
    return number


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("must be HOST:PORT")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    description: str
    parse: Callable[[str], Any] = str

    @property
    def env(self) -> str:
        return "GATEWAY_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("listen", "127.0.0.1:8443", "HTTPS address (HOST:PORT) browsers connect to.", _address),
    Setting("workers", "1", "Worker processes sharing the port (SO_REUSEPORT).", positive_int),
    Setting(
        "tls_cert", None, "Server certificate chain (PEM), e.g. from `ca-service server-cert`."
    ),
    Setting("tls_key", None, "The server certificate's private key (PEM)."),
    Setting(
        "client_trust",
        None,
        "CA certificates (PEM) client certificates must chain to; reloaded when it changes.",
    ),
    Setting("ca_address", "127.0.0.1:50051", "The CA's gRPC address."),
    Setting(
        "ca_credential_dir",
        None,
        "Directory with the gateway's gRPC client credential (cert.pem, key.pem, ca.pem), "
        "as written by `ca-service credential NAME --role gateway`.",
    ),
    Setting(
        "ca_server_name",
        "",
        "Name to check in the CA's gRPC server certificate, when not the address's host.",
    ),
    Setting(
        "crl_url",
        "",
        "The CA's full CRL (http://…/crl/issuing.crl), polled while the revocation stream is "
        "down; empty: no fallback.",
    ),
    Setting("upstream", "http://127.0.0.1:8081", "The protected application (http://HOST:PORT)."),
    Setting(
        "upstream_connect_timeout", "5", "Seconds to connect to the upstream.", _positive_float
    ),
    Setting(
        "upstream_timeout",
        "60",
        "Seconds the upstream may take to start its answer (504 after that).",
        _positive_float,
    ),
    Setting("upstream_pool", "64", "Idle keep-alive connections kept per worker.", positive_int),
    Setting("redis_url", "redis://127.0.0.1:6379/0", "Redis for sessions (shared by workers)."),
    Setting("session_idle", "1800", "Seconds of inactivity that end a session.", positive_int),
    Setting("session_absolute", "43200", "Seconds after which a session ends.", positive_int),
    Setting(
        "require_login",
        "1",
        "1: protected routes need the certificate and a password login; 0: certificate only.",
        flag,
    ),
    Setting(
        "max_staleness",
        "5",
        "Seconds without proof that the revocation view is current before protected "
        "requests are refused (fail closed).",
        _positive_float,
    ),
    Setting(
        "user_cache_seconds",
        "2",
        "Seconds a user's record (role, organisation, lock state) is cached.",
        _positive_float,
    ),
    Setting("header_user_id", "x-user-id", "Upstream header carrying the user ID."),
    Setting("header_org_id", "x-org-id", "Upstream header carrying the organisation ID."),
    Setting("header_user_role", "x-user-role", "Upstream header carrying the role."),
    Setting("header_xfcc", "x-forwarded-client-cert", "Upstream header carrying the XFCC."),
    Setting("xfcc_by", "", "The By= element of the XFCC header (the gateway's URI), if any."),
    Setting("site_name", "電子証明書サービス", "Name shown on the screens."),
    Setting("log_level", "INFO", "Logging level."),
)


@dataclass(frozen=True)
class GatewaySettings:
    listen: tuple[str, int]
    workers: int
    tls_cert: str
    tls_key: str
    client_trust: str
    ca_address: str
    ca_credential_dir: str
    ca_server_name: str
    crl_url: str
    upstream: str
    upstream_connect_timeout: float
    upstream_timeout: float
    upstream_pool: int
    redis_url: str
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

    def paths(self) -> tuple[Path, Path, Path]:
        return Path(self.tls_cert), Path(self.tls_key), Path(self.client_trust)


def load_settings(environ: Mapping[str, str] | None = None) -> GatewaySettings:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env, setting.default)
        if raw is None:
            raise GatewayConfigurationError(f"{setting.env} must be set: {setting.description}")
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise GatewayConfigurationError(f"{setting.env}={raw!r}: {exc}") from None
    return GatewaySettings(**values)


def configuration_reference() -> str:
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "(required)"
        lines.append(f"| `{setting.env}` | {default} | {setting.description} |")
    return "\n".join(lines)
