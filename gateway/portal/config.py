"""The portal's settings: ``PORTAL_*`` environment variables and an optional TOML file
(``PORTAL_CONFIG_FILE``), declared once each (``ca-portal config-reference`` prints the
table for the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ca_service.shared import settings as shared
from ca_service.shared.errors import ConfigError
from ca_service.shared.settings import Setting, SettingFactory, address, positive_int
from gateway.card_headers import (
    CARD_ADDRESS,
    CARD_BIRTH_DATE,
    CARD_FINGERPRINT,
    CARD_NAME,
    CARD_SEX,
)
from gateway.errors import GatewayConfigurationError

__all__ = ["SETTINGS", "PortalSettings", "configuration_reference", "load_settings"]

_setting = SettingFactory("PORTAL_", required_without_default=True)


def _public_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or not value.endswith("/"):
        raise ValueError("must be an http(s) URL ending in /")
    return value


def _mount(value: str) -> str:
    if not value.startswith("/") or not value.endswith("/"):
        raise ValueError("must start and end with /")
    return value


SETTINGS: tuple[Setting, ...] = (
    _setting(
        "listen",
        "127.0.0.1:8090",
        "HTTP address (HOST:PORT) the gateway forwards to; loopback or a private network "
        "only: the portal trusts the card headers the gateway sets.",
        address,
    ),
    _setting(
        "public_url",
        "https://localhost:8443/procedures/",
        "The portal as browsers reach it through the gateway (the e-mail link starts with "
        "it); ends in /.",
        _public_url,
    ),
    _setting(
        "mount",
        "/procedures/",
        "The path prefix the gateway routes to the portal (mode `public`); the card pages "
        "are under `<mount>card/` (mode `card`).",
        _mount,
    ),
    _setting(
        "database_url",
        "sqlite:///./portal-data/portal.sqlite3",
        "The portal's own SQL database: `sqlite:///PATH` or `postgresql://…` (not the CA's).",
        secret=True,
    ),
    _setting(
        "storage_dir",
        "./portal-data/files",
        "Directory of the attached files (one file each, named at random; the database keeps "
        "name, size and SHA-256).",
    ),
    _setting("ca_address", "127.0.0.1:50051", "The CA's gRPC address."),
    _setting(
        "ca_credential_dir",
        None,
        "Directory with the portal's gRPC client credential (cert.pem, key.pem, ca.pem), as "
        "written by `ca-service credential NAME --role portal`.",
    ),
    _setting(
        "ca_server_name",
        "",
        "Name to check in the CA's gRPC server certificate, when not the address's host.",
    ),
    _setting(
        "session_seconds",
        "3600",
        "Seconds a portal session (a verified address, then its card) lasts from the link.",
        positive_int,
    ),
    _setting(
        "registrations_per_hour",
        "5",
        "Registration links one e-mail address may be sent per hour (more get a please-wait "
        "page): the registration is public, so nobody can flood a mailbox through it.",
        positive_int,
    ),
    _setting("header_card_name", CARD_NAME, "Header with the card holder's name."),
    _setting("header_card_address", CARD_ADDRESS, "Header with the card holder's address."),
    _setting("header_card_birth_date", CARD_BIRTH_DATE, "Header with the date of birth."),
    _setting("header_card_sex", CARD_SEX, "Header with the card holder's sex."),
    _setting(
        "header_card_fingerprint",
        CARD_FINGERPRINT,
        "Header with the SHA-256 of the card certificate (lower-case hex).",
    ),
    _setting("site_name", "共済オンライン手続きポータル", "Name shown on the screens."),
    _setting("log_level", "INFO", "Logging level."),
)


@dataclass(frozen=True)
class PortalSettings:
    listen: tuple[str, int]
    public_url: str
    mount: str
    database_url: str = field(repr=False)
    storage_dir: str
    ca_address: str
    ca_credential_dir: str
    ca_server_name: str
    session_seconds: int
    registrations_per_hour: int
    header_card_name: str
    header_card_address: str
    header_card_birth_date: str
    header_card_sex: str
    header_card_fingerprint: str
    site_name: str
    log_level: str


def load_settings(environ: Mapping[str, str] | None = None) -> PortalSettings:
    try:
        raw = shared.read_settings(SETTINGS, os.environ if environ is None else environ)
        values = {setting.name: raw.parsed(setting.name) for setting in SETTINGS}
        return PortalSettings(**values)
    except ConfigError as exc:
        raise GatewayConfigurationError(str(exc)) from None


def configuration_reference() -> str:
    return shared.configuration_reference(SETTINGS)
