"""One frozen, validated settings object, built from ``CA_*`` environment variables and an
optional TOML file (``CA_CONFIG_FILE``); environment variables win over the file.

Every setting is declared once in ``SETTINGS`` with its default and description; the README's
configuration reference is generated from that table (``ca-service config-reference``).
Secrets can be given as a value (``CA_X``) or as a file path (``CA_X_FILE``); they are never
read from the command line and never shown by ``repr``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ca_service.domain.profiles import CaProfile, ClientCertificateProfile
from ca_service.errors import ConfigurationError
from ca_service.pki.keys import KeyAlgorithm

__all__ = ["SETTINGS", "Secret", "Settings", "configuration_reference", "load_settings"]


class Secret:
    """A secret value whose repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    description: str
    parse: Callable[[str], Any] = str
    secret: bool = False

    @property
    def env(self) -> str:
        return "CA_" + self.name.upper()


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0")


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "data_dir",
        "./ca-data",
        "Directory holding the CA keys, certificates, gRPC "
        "credentials and (by default) the SQLite database.",
    ),
    Setting(
        "database_url",
        None,
        "SQL database: `sqlite:///relative/path.db`, "
        "`sqlite:////absolute/path.db` or `postgresql://user@host:port/db`. "
        "Default: SQLite file `ca.db` in the data directory.",
    ),
    Setting(
        "grpc_workers",
        "1",
        "Server processes sharing the gRPC port (SO_REUSEPORT); more than 1 needs an "
        "explicit port.",
        positive_int,
    ),
    Setting(
        "database_commit_delay_ms",
        "2",
        "Under sustained load the SQL writer waits this long for more transactions to share "
        "one commit (group commit); 0 commits at once.",
        _non_negative_int,
    ),
    Setting("database_readers", "4", "Reader threads (and connections) per process.", positive_int),
    Setting(
        "grpc_address",
        "127.0.0.1:50051",
        "host:port the gRPC API listens on (ca-service) or connects to (ca-admin).",
    ),
    Setting(
        "key_passphrase",
        None,
        "Passphrase that encrypts the CA private keys "
        "(PKCS#8). Required by `init` and `serve`; or give `CA_KEY_PASSPHRASE_FILE`.",
        secret=True,
    ),
    Setting(
        "key_algorithm",
        "ec-p256",
        "Algorithm of the CA keys made by `init`: `ec-p256`, `ec-p384` or `rsa-3072`.",
        KeyAlgorithm,
    ),
    Setting(
        "organization", "Example Labour Bank", "Organisation (O) in the CA names made by `init`."
    ),
    Setting("root_name", None, "Common name of the root CA. Default: `<organization> Root CA`."),
    Setting(
        "issuing_name", None, "Common name of the issuing CA. Default: `<organization> Issuing CA`."
    ),
    Setting(
        "public_base_url",
        "http://127.0.0.1:8080",
        "Base of the CRL, OCSP and "
        "CA-certificate URLs written into every certificate (plain http, RFC 5280).",
    ),
    Setting(
        "crl_url", None, "CRL distribution point. Default: `<public_base_url>/crl/issuing.crl`."
    ),
    Setting(
        "delta_crl_url",
        None,
        "Delta CRL URL (the full CRL's FreshestCRL). Default: "
        "`<public_base_url>/crl/issuing-delta.crl`.",
    ),
    Setting("ocsp_url", None, "OCSP responder URL (AIA). Default: `<public_base_url>/ocsp`."),
    Setting(
        "http_address",
        "127.0.0.1:8080",
        "host:port of the HTTP server for CRLs, CA "
        "certificates and OCSP (the public URLs above must lead here).",
    ),
    Setting(
        "crl_validity_hours", "24", "nextUpdate of a full CRL, from its thisUpdate.", positive_int
    ),
    Setting("crl_delta_validity_minutes", "60", "nextUpdate of a delta CRL.", positive_int),
    Setting(
        "crl_interval_minutes",
        "30",
        "CRLs are rebuilt at least this often (and shortly "
        "after every revocation); must be shorter than the delta validity.",
        positive_int,
    ),
    Setting(
        "ocsp_validity_minutes",
        "60",
        "nextUpdate of an OCSP response; cached responses "
        "are re-signed when half of it has passed, and at once on revocation.",
        positive_int,
    ),
    Setting(
        "ca_issuers_url",
        None,
        "Issuing CA certificate URL (AIA caIssuers). Default: `<public_base_url>/ca/issuing.der`.",
    ),
    Setting(
        "user_uri_prefix",
        "https://ca.example.jp/users/",
        "Prefix of the URI SAN that "
        "names the user in every client certificate; the user ID is appended.",
    ),
    Setting(
        "not_before_skew_seconds",
        "300",
        "notBefore is the issue time less this many "
        "seconds (never before 00:00 Japan time of the issue day).",
        _non_negative_int,
    ),
    Setting(
        "pkcs12_kdf_rounds",
        "100000",
        "PBKDF2-SHA256 iterations protecting PKCS#12 files.",
        positive_int,
    ),
    Setting("log_level", "INFO", "Python logging level."),
    Setting(
        "redis_url",
        "redis://127.0.0.1:6379/0",
        "Redis holding the lockout counters, "
        "authentication codes and issuance tickets; shared by every ca-service process.",
    ),
    Setting("redis_prefix", "ca:", "Prefix of every Redis key this service writes."),
    Setting(
        "code_key",
        None,
        "Secret key of the MACs under which authentication codes are "
        "stored; or give `CA_CODE_KEY_FILE`. Default: the file `secrets/code-key` in the "
        "data directory, made by `init` (every process must share it).",
        secret=True,
    ),
    Setting("smtp_host", "127.0.0.1", "SMTP server the mail worker delivers to."),
    Setting("smtp_port", "25", "SMTP port.", positive_int),
    Setting("smtp_security", "none", "`none`, `starttls` or `tls` (implicit TLS)."),
    Setting("smtp_username", None, "SMTP user name, if the server wants one."),
    Setting("smtp_password", None, "SMTP password; or give `CA_SMTP_PASSWORD_FILE`.", secret=True),
    Setting("mail_from", "ca@example.jp", "From address of every mail."),
    Setting(
        "mail_worker",
        "1",
        "`1`: this process also delivers queued mail and queues "
        "the renewal/expiry notices; `0`: it only queues.",
        flag,
    ),
    Setting(
        "mail_poll_seconds", "2", "How often the mail worker looks for due mail.", positive_int
    ),
    Setting(
        "notice_interval_seconds",
        "300",
        "How often renewal and expiry notices are looked for (SPEC C3).",
        positive_int,
    ),
    Setting(
        "password_hash_memory_kib",
        "19456",
        "Argon2id memory per password hash "
        "(KiB); raising it re-hashes passwords at their next successful use.",
        positive_int,
    ),
    Setting("password_hash_time_cost", "2", "Argon2id passes per password hash.", positive_int),
    Setting(
        "initial_password_days",
        "14",
        "Days an operator-issued initial password stays valid.",
        positive_int,
    ),
    Setting(
        "lock_seconds",
        "3600",
        "SPEC B3's 60-minute lock; change only for tests with real short durations.",
        positive_int,
    ),
    Setting(
        "code_ttl_seconds",
        "1800",
        "SPEC B2's 30-minute code validity; change only for tests with real short durations.",
        positive_int,
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    database_readers: int
    database_commit_delay_ms: int
    grpc_address: str
    grpc_workers: int
    key_passphrase: Secret | None
    key_algorithm: KeyAlgorithm
    organization: str
    root_name: str
    issuing_name: str
    client_profile: ClientCertificateProfile
    delta_crl_url: str
    http_address: str
    crl_validity_hours: int
    crl_delta_validity_minutes: int
    crl_interval_minutes: int
    ocsp_validity_minutes: int
    pkcs12_kdf_rounds: int
    log_level: str
    redis_url: str
    redis_prefix: str
    code_key: Secret | None
    smtp_host: str
    smtp_port: int
    smtp_security: str
    smtp_username: str | None
    smtp_password: Secret | None
    mail_from: str
    mail_worker: bool
    mail_poll_seconds: int
    notice_interval_seconds: int
    password_hash_memory_kib: int
    password_hash_time_cost: int
    initial_password_days: int
    lock_seconds: int
    code_ttl_seconds: int
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def ca_profile(self) -> CaProfile:
        return CaProfile(
            organization=self.organization,
            root_common_name=self.root_name,
            issuing_common_name=self.issuing_name,
            services_common_name=f"{self.organization} Services CA"[:64],
        )

    def passphrase(self) -> bytes:
        if self.key_passphrase is None or not self.key_passphrase.reveal():
            raise ConfigurationError(
                "the CA key passphrase is not set: set CA_KEY_PASSPHRASE_FILE (a file holding "
                "it) or CA_KEY_PASSPHRASE"
            )
        return self.key_passphrase.reveal().encode("utf-8")


def _read_secret_file(path: str, env: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigurationError(f"{env}_FILE: cannot read {path}: {exc.strerror}") from None


def load_settings(
    environ: Mapping[str, str] | None = None, *, overrides: Mapping[str, str] | None = None
) -> Settings:
    """Builds the settings; ``overrides`` (from command-line options) win over everything."""
    env = dict(os.environ if environ is None else environ)
    file_values: dict[str, Any] = {}
    config_file = env.get("CA_CONFIG_FILE")
    if config_file:
        try:
            with open(config_file, "rb") as handle:
                file_values = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"CA_CONFIG_FILE {config_file}: {exc}") from None
        unknown = set(file_values) - set(_BY_NAME)
        if unknown:
            raise ConfigurationError(f"CA_CONFIG_FILE: unknown settings {sorted(unknown)}")

    raw: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        value: str | None = setting.default
        source = "default"
        if setting.name in file_values:
            value, source = str(file_values[setting.name]), "file"
        if setting.secret and env.get(setting.env + "_FILE"):
            value, source = _read_secret_file(env[setting.env + "_FILE"], setting.env), "env-file"
        if env.get(setting.env) is not None:
            value, source = env[setting.env], "env"
        if overrides and overrides.get(setting.name) is not None:
            value, source = overrides[setting.name], "option"
        raw[setting.name] = value
        sources[setting.name] = source

    def parsed(name: str) -> Any:
        setting = _BY_NAME[name]
        value = raw[name]
        if value is None:
            return None
        try:
            return setting.parse(value)
        except ValueError as exc:
            raise ConfigurationError(f"{setting.env}: invalid value: {exc}") from None

    data_dir = Path(parsed("data_dir")).expanduser().resolve()
    base = str(parsed("public_base_url")).rstrip("/")
    organization = str(parsed("organization"))
    passphrase = raw["key_passphrase"]
    try:
        client_profile = ClientCertificateProfile(
            crl_url=parsed("crl_url") or f"{base}/crl/issuing.crl",
            ocsp_url=parsed("ocsp_url") or f"{base}/ocsp",
            ca_issuers_url=parsed("ca_issuers_url") or f"{base}/ca/issuing.der",
            user_uri_prefix=parsed("user_uri_prefix"),
            not_before_skew=timedelta(seconds=parsed("not_before_skew_seconds")),
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    return Settings(
        data_dir=data_dir,
        database_url=parsed("database_url") or f"sqlite:///{data_dir / 'ca.db'}",
        database_readers=parsed("database_readers"),
        database_commit_delay_ms=parsed("database_commit_delay_ms"),
        grpc_address=parsed("grpc_address"),
        grpc_workers=parsed("grpc_workers"),
        key_passphrase=Secret(passphrase) if passphrase else None,
        key_algorithm=parsed("key_algorithm"),
        organization=organization,
        root_name=parsed("root_name") or f"{organization} Root CA",
        issuing_name=parsed("issuing_name") or f"{organization} Issuing CA",
        client_profile=client_profile,
        delta_crl_url=parsed("delta_crl_url") or f"{base}/crl/issuing-delta.crl",
        http_address=parsed("http_address"),
        crl_validity_hours=parsed("crl_validity_hours"),
        crl_delta_validity_minutes=parsed("crl_delta_validity_minutes"),
        crl_interval_minutes=parsed("crl_interval_minutes"),
        ocsp_validity_minutes=parsed("ocsp_validity_minutes"),
        pkcs12_kdf_rounds=parsed("pkcs12_kdf_rounds"),
        log_level=str(parsed("log_level")).upper(),
        redis_url=parsed("redis_url"),
        redis_prefix=parsed("redis_prefix"),
        code_key=Secret(raw["code_key"]) if raw["code_key"] else None,
        smtp_host=parsed("smtp_host"),
        smtp_port=parsed("smtp_port"),
        smtp_security=_choice(
            parsed("smtp_security"), ("none", "starttls", "tls"), "CA_SMTP_SECURITY"
        ),
        smtp_username=parsed("smtp_username"),
        smtp_password=Secret(raw["smtp_password"]) if raw["smtp_password"] else None,
        mail_from=parsed("mail_from"),
        mail_worker=parsed("mail_worker"),
        mail_poll_seconds=parsed("mail_poll_seconds"),
        notice_interval_seconds=parsed("notice_interval_seconds"),
        password_hash_memory_kib=parsed("password_hash_memory_kib"),
        password_hash_time_cost=parsed("password_hash_time_cost"),
        initial_password_days=parsed("initial_password_days"),
        lock_seconds=parsed("lock_seconds"),
        code_ttl_seconds=parsed("code_ttl_seconds"),
        sources=sources,
    )


def _choice(value: str, choices: tuple[str, ...], env: str) -> str:
    if value not in choices:
        raise ConfigurationError(f"{env}: must be one of {', '.join(choices)}")
    return value


def configuration_reference() -> str:
    """The Markdown table of every setting, for the README."""
    lines = [
        "| setting (TOML key) | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for setting in SETTINGS:
        env = f"`{setting.env}`" + (f" or `{setting.env}_FILE`" if setting.secret else "")
        default = f"`{setting.default}`" if setting.default is not None else "(see meaning)"
        lines.append(f"| `{setting.name}` | {env} | {default} | {setting.description} |")
    lines += [
        "| | `CA_CONFIG_FILE` | (none) | TOML file with any of the settings above "
        "(keys as in the first column); environment variables win over it. |",
        "| | `CA_ADMIN_CREDENTIALS` | `<data_dir>/credentials/operator` | ca-admin: directory "
        "with the gRPC client credential (`cert.pem`, `key.pem`, `ca.pem`). |",
    ]
    return "\n".join(lines)
