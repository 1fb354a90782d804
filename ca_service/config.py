"""One frozen, validated settings object, built from ``CA_*`` environment variables and an
optional TOML file (``CA_CONFIG_FILE``); environment variables win over the file.

Every setting is declared once in ``SETTINGS`` with its default and description; the README's
configuration reference is generated from that table (``ca-service config-reference``).
Secrets can be given as a value (``CA_X``) or as a file path (``CA_X_FILE``); they are never
read from the command line and never shown by ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from ca_service.domain.profiles import (
    CaProfile,
    ClientCertificateProfile,
    IssuingUrls,
    require_url,
)
from ca_service.domain.resend import RESEND_INTERVAL
from ca_service.domain.rules import Rules
from ca_service.errors import ConfigurationError
from ca_service.pki.keys import KeyAlgorithm
from ca_service.shared import settings as shared
from ca_service.shared.errors import ConfigError
from ca_service.shared.redis_url import check_redis_url
from ca_service.shared.settings import (
    RawSettings,
    Secret,
    Setting,
    SettingFactory,
    flag,
    non_negative_int,
    positive_int,
    positive_number,
)

__all__ = [
    "SETTINGS",
    "Pkcs11Settings",
    "Settings",
    "configuration_reference",
    "hex_key",
    "load_settings",
]

MIN_CODE_KEY_BYTES = 32


def hex_key(text: str) -> bytes:
    """A MAC key written as hex, as ``init`` writes it: the same text makes the same key
    whether it comes from the data directory, ``CA_CODE_KEY`` or ``CA_CODE_KEY_FILE``."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError("must be hexadecimal (as in secrets/code-key)") from None
    if len(key) < MIN_CODE_KEY_BYTES:
        raise ValueError(f"must hold at least {MIN_CODE_KEY_BYTES} bytes")
    return key


_setting = SettingFactory("CA_")

SETTINGS: tuple[Setting, ...] = (
    _setting(
        "data_dir",
        "./ca-data",
        "Directory holding the CA keys, certificates, gRPC "
        "credentials and (by default) the SQLite database.",
    ),
    _setting(
        "database_url",
        None,
        "SQL database: `sqlite:///relative/path.db`, "
        "`sqlite:////absolute/path.db` or `postgresql://user:password@host:port/db`. "
        "Default: SQLite file `ca.db` in the data directory.",
        secret=True,
    ),
    _setting(
        "grpc_workers",
        "1",
        "Server processes sharing the gRPC port (SO_REUSEPORT); more than 1 needs an "
        "explicit port.",
        positive_int,
    ),
    _setting(
        "database_commit_delay_ms",
        "2",
        "Under sustained load the SQL writer waits this long for more transactions to share "
        "one commit (group commit); 0 commits at once.",
        non_negative_int,
    ),
    _setting(
        "database_readers", "4", "Reader threads (and connections) per process.", positive_int
    ),
    _setting(
        "grpc_address",
        "127.0.0.1:50051",
        "host:port the gRPC API listens on (ca-service) or connects to (ca-admin).",
    ),
    _setting(
        "key_passphrase",
        None,
        "Passphrase that encrypts the CA private keys "
        "(PKCS#8). Required by `init` and `serve`; or give `CA_KEY_PASSPHRASE_FILE`.",
        secret=True,
    ),
    _setting(
        "key_algorithm",
        "ec-p256",
        "Algorithm of the CA keys made by `init`: `ec-p256`, `ec-p384` or `rsa-3072`.",
        KeyAlgorithm,
    ),
    _setting(
        "pkcs11_module",
        None,
        "PKCS#11 module (shared library) of the HSM holding the issuing CA's and the OCSP "
        "responder's keys, e.g. `/usr/lib/softhsm/libsofthsm2.so`. Unset: those keys are "
        "encrypted files in the data directory. See README, *Keys in an HSM*.",
    ),
    _setting("pkcs11_token", None, "Label of the PKCS#11 token (with `CA_PKCS11_MODULE`)."),
    _setting(
        "pkcs11_pin",
        None,
        "User PIN of the PKCS#11 token; give it as a file, `CA_PKCS11_PIN_FILE`.",
        secret=True,
    ),
    _setting(
        "pkcs11_issuing_key_label",
        "issuing-ca",
        "Label (CKA_LABEL) of the issuing CA's key pair in the token.",
    ),
    _setting(
        "pkcs11_ocsp_key_label",
        "ocsp-responder",
        "Label of the OCSP responder's key pairs in the token (a new one at each rotation).",
    ),
    _setting(
        "organization", "Example Labour Bank", "Organisation (O) in the CA names made by `init`."
    ),
    _setting("root_name", None, "Common name of the root CA. Default: `<organization> Root CA`."),
    _setting(
        "issuing_name", None, "Common name of the issuing CA. Default: `<organization> Issuing CA`."
    ),
    _setting(
        "public_base_url",
        "http://127.0.0.1:8080",
        "Base of the CRL, OCSP and "
        "CA-certificate URLs written into every certificate (plain http, RFC 5280).",
    ),
    _setting(
        "crl_url", None, "CRL distribution point. Default: `<public_base_url>/crl/issuing.crl`."
    ),
    _setting(
        "delta_crl_url",
        None,
        "Delta CRL URL (FreshestCRL in the full CRL and in every client certificate). "
        "Default: `<public_base_url>/crl/issuing-delta.crl`.",
    ),
    _setting(
        "root_crl_url",
        None,
        "The root CA's CRL (ARL), named in the issuing CA's certificate; served by ca-service. "
        "Default: `<public_base_url>/crl/root.crl`.",
    ),
    _setting(
        "arl_validity_days",
        "30",
        "nextUpdate of the root CA's CRL (ARL); ca-service re-signs it when a third of this "
        "is left, if the root key is in the data directory (else `ca-service sign-arl`).",
        positive_int,
    ),
    _setting("ocsp_url", None, "OCSP responder URL (AIA). Default: `<public_base_url>/ocsp`."),
    _setting(
        "http_address",
        "127.0.0.1:8080",
        "host:port of the HTTP server for CRLs, CA "
        "certificates and OCSP (the public URLs above must lead here).",
    ),
    _setting(
        "http_max_connections",
        "10000",
        "Connections the HTTP port holds per process, at most the open-file limit "
        "(RLIMIT_NOFILE, raised to its hard limit at start-up) less `CA_DESCRIPTOR_RESERVE`. "
        "When full, a new connection replaces the one that has waited longest for its "
        "request; with none waiting it gets 503 at once.",
        positive_int,
    ),
    _setting(
        "http_head_timeout",
        "10",
        "Seconds a connection to the HTTP port has for a whole request (head and body), "
        "from its accept or the end of the previous response; bytes trickling in do not "
        "extend it.",
        positive_number,
    ),
    _setting(
        "descriptor_reserve",
        "1024",
        "Open files kept free of HTTP connections for gRPC, the SQL store, Redis and logs "
        "(at most half of the limit).",
        positive_int,
    ),
    _setting(
        "crl_validity_hours", "24", "nextUpdate of a full CRL, from its thisUpdate.", positive_int
    ),
    _setting("crl_delta_validity_minutes", "60", "nextUpdate of a delta CRL.", positive_int),
    _setting(
        "crl_interval_minutes",
        "30",
        "A new base (full) CRL this often; a delta CRL shortly after every revocation and at "
        "least this often. Must be shorter than the delta validity; decimals allowed.",
        positive_number,
    ),
    _setting(
        "ocsp_validity_minutes",
        "60",
        "nextUpdate of an OCSP response; cached responses "
        "are re-signed when half of it has passed, and at once on revocation.",
        positive_int,
    ),
    _setting(
        "ocsp_cache_bytes",
        "134217728",
        "Memory (bytes) for pre-signed OCSP answers: one per certificate and CertID hash "
        "algorithm, least recently used dropped first; 0 signs every answer on demand.",
        non_negative_int,
    ),
    _setting(
        "ca_issuers_url",
        None,
        "Issuing CA certificate URL (AIA caIssuers). Default: `<public_base_url>/ca/issuing.der`.",
    ),
    _setting(
        "user_uri_prefix",
        "https://ca.example.jp/users/",
        "Prefix of the URI SAN that "
        "names the user in every client certificate; the user ID is appended.",
    ),
    _setting(
        "not_before_skew_seconds",
        "300",
        "notBefore is the issue time less this many "
        "seconds (never before 00:00 Japan time of the issue day).",
        non_negative_int,
    ),
    _setting(
        "pkcs12_kdf_rounds",
        "100000",
        "PBKDF2-SHA256 iterations protecting PKCS#12 files (key and certificate bags); the "
        "MAC's key derivation runs as many iterations.",
        positive_int,
    ),
    _setting("log_level", "INFO", "Python logging level."),
    _setting(
        "redis_url",
        "redis://127.0.0.1:6379/0",
        "Redis holding the lockout counters, authentication codes and issuance tickets; "
        "shared by every ca-service process. One server: `redis://[[USER]:PASSWORD@]HOST:PORT/DB` "
        "(`rediss://` for TLS). A primary with replicas under Redis Sentinel: "
        "`redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT],HOST[:PORT],…/SERVICE[/DB][?OPTIONS]`, "
        "the hosts being the sentinels (port 26379 unless given), SERVICE the name they "
        "monitor, USER and PASSWORD those of the Redis servers; `rediss+sentinel://` for TLS "
        "to sentinels and servers. OPTIONS: `sentinel_username`, `sentinel_password` (the "
        "sentinels' own); `wait_replicas` (default 1: a lockout count, code try or ticket use "
        "is done only once that many replicas have it, `WAIT`; set it to the number of "
        "replicas; 0: off) and `wait_timeout_ms` (default 500; after that the call is "
        "UNAVAILABLE); with TLS `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile` (PEM files). "
        "See README, *Redis failover (Sentinel)*.",
        check_redis_url,
        secret=True,
    ),
    _setting("redis_prefix", "ca:", "Prefix of every Redis key this service writes."),
    _setting(
        "code_key",
        None,
        "Secret key of the MACs under which authentication codes are "
        "stored, in hex (at least 32 bytes), as in the file `secrets/code-key` that `init` "
        "makes in the data directory (the default); or give `CA_CODE_KEY_FILE` (that file "
        "itself will do). Every process must share it.",
        hex_key,
        secret=True,
    ),
    _setting("smtp_host", "127.0.0.1", "SMTP server the mail worker delivers to."),
    _setting("smtp_port", "25", "SMTP port.", positive_int),
    _setting("smtp_security", "none", "`none`, `starttls` or `tls` (implicit TLS)."),
    _setting("smtp_username", None, "SMTP user name, if the server wants one."),
    _setting("smtp_password", None, "SMTP password; or give `CA_SMTP_PASSWORD_FILE`.", secret=True),
    _setting("mail_from", "ca@example.jp", "From address of every mail."),
    _setting(
        "mail_worker",
        "1",
        "`1`: this process also delivers queued mail and queues "
        "the renewal/expiry notices; `0`: it only queues.",
        flag,
    ),
    _setting(
        "mail_poll_seconds", "2", "How often the mail worker looks for due mail.", positive_int
    ),
    _setting(
        "notice_interval_seconds",
        "300",
        "How often renewal and expiry notices are looked for (SPEC C3).",
        positive_int,
    ),
    _setting(
        "lease_seconds",
        "4",
        "Lease time of a background duty (CRL publishing, the notice scan): one process "
        "holds each, renewing it every quarter of this; when the holder dies, another "
        "takes the duty over within about 1.25 times this.",
        positive_int,
    ),
    _setting(
        "password_hash_memory_kib",
        "19456",
        "Argon2id memory per password hash "
        "(KiB); raising it re-hashes passwords at their next successful use.",
        positive_int,
    ),
    _setting("password_hash_time_cost", "2", "Argon2id passes per password hash.", positive_int),
    _setting(
        "password_hash_concurrency",
        "0",
        "Password hashes (Argon2id) run at once by this process; `0`: half the CPUs, at "
        "least 1. The rest of the CPU stays free for OCSP, CRLs and issuance.",
        non_negative_int,
    ),
    _setting(
        "password_hash_queue",
        "32",
        "Password checks that may wait for a hashing slot; a check beyond that is refused "
        "with RESOURCE_EXHAUSTED (reason `BUSY`).",
        non_negative_int,
    ),
    _setting(
        "initial_password_days",
        "14",
        "Days an operator-issued initial password stays valid.",
        positive_int,
    ),
    _setting(
        "lock_seconds",
        "3600",
        "SPEC B3's 60-minute lock; change only for tests with real short durations.",
        positive_int,
    ),
    _setting(
        "code_ttl_seconds",
        "1800",
        "SPEC B2's 30-minute code validity; change only for tests with real short durations.",
        positive_int,
    ),
    _setting(
        "resend_interval_seconds",
        str(RESEND_INTERVAL // timedelta(seconds=1)),
        "The shortest wait between two authentication codes sent to one user (認証コードの"
        "再送); change only for tests with real short durations.",
        positive_int,
    ),
)


@dataclass(frozen=True)
class Pkcs11Settings:
    """Where the CA's online keys are when they are in an HSM."""

    module: Path
    token: str
    pin: Secret = field(repr=False)
    issuing_key_label: str
    ocsp_key_label: str


def _pkcs11(raw: RawSettings) -> Pkcs11Settings | None:
    parsed = raw.parsed
    module = parsed("pkcs11_module")
    if not module:
        return None
    token, pin = parsed("pkcs11_token"), raw.secret("pkcs11_pin")
    if not token:
        raise ConfigurationError("CA_PKCS11_MODULE is set: set CA_PKCS11_TOKEN (the token label)")
    if pin is None or not pin.reveal():
        raise ConfigurationError(
            "CA_PKCS11_MODULE is set: set CA_PKCS11_PIN_FILE (a file holding the user PIN)"
        )
    return Pkcs11Settings(
        module=Path(module).expanduser(),
        token=str(token),
        pin=pin,
        issuing_key_label=str(parsed("pkcs11_issuing_key_label")),
        ocsp_key_label=str(parsed("pkcs11_ocsp_key_label")),
    )


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    # The URLs may carry passwords: kept out of the repr.
    database_url: str = field(repr=False)
    database_readers: int
    database_commit_delay_ms: int
    grpc_address: str
    grpc_workers: int
    key_passphrase: Secret | None
    key_algorithm: KeyAlgorithm
    pkcs11: Pkcs11Settings | None
    organization: str
    root_name: str
    issuing_name: str
    client_profile: ClientCertificateProfile
    root_crl_url: str
    arl_validity_days: int
    http_address: str
    http_max_connections: int
    http_head_timeout: float
    descriptor_reserve: int
    crl_validity_hours: int
    crl_delta_validity_minutes: int
    crl_interval_minutes: float
    ocsp_validity_minutes: int
    ocsp_cache_bytes: int
    pkcs12_kdf_rounds: int
    log_level: str
    redis_url: str = field(repr=False)
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
    lease_seconds: int
    password_hash_memory_kib: int
    password_hash_time_cost: int
    password_hash_concurrency: int
    password_hash_queue: int
    initial_password_days: int
    lock_seconds: int
    code_ttl_seconds: int
    resend_interval_seconds: int
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def ca_profile(self) -> CaProfile:
        return CaProfile(
            organization=self.organization,
            root_common_name=self.root_name,
            issuing_common_name=self.issuing_name,
            services_common_name=f"{self.organization} Services CA"[:64],
        )

    @property
    def delta_crl_url(self) -> str:
        url = self.client_profile.delta_crl_url
        assert url is not None  # load_settings always sets it
        return url

    @property
    def root_ca_issuers_url(self) -> str:
        """Where the root CA's certificate is served: beside the issuing CA's."""
        return self.client_profile.ca_issuers_url.rsplit("/", 1)[0] + "/root.der"

    @property
    def issuing_urls(self) -> IssuingUrls:
        """What the issuing CA's certificate points at: the root's CRL and certificate."""
        return IssuingUrls(crl_url=self.root_crl_url, ca_issuers_url=self.root_ca_issuers_url)

    @property
    def rules(self) -> Rules:
        """The figures of the rules, with this CA's lock and code durations."""
        return Rules(
            lock_duration=timedelta(seconds=self.lock_seconds),
            code_validity=timedelta(seconds=self.code_ttl_seconds),
            resend_interval=timedelta(seconds=self.resend_interval_seconds),
        )

    def passphrase(self) -> bytes:
        if self.key_passphrase is None or not self.key_passphrase.reveal():
            raise ConfigurationError(
                "the CA key passphrase is not set: set CA_KEY_PASSPHRASE_FILE (a file holding "
                "it) or CA_KEY_PASSPHRASE"
            )
        return self.key_passphrase.reveal().encode("utf-8")


def load_settings(
    environ: Mapping[str, str] | None = None, *, overrides: Mapping[str, str] | None = None
) -> Settings:
    """Builds the settings; ``overrides`` (from command-line options) win over everything."""
    try:
        raw = shared.read_settings(
            SETTINGS, os.environ if environ is None else environ, overrides=overrides
        )
        return _build(raw)
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None


def _build(raw: RawSettings) -> Settings:
    parsed = raw.parsed
    data_dir = Path(parsed("data_dir")).expanduser().resolve()
    base = str(parsed("public_base_url")).rstrip("/")
    organization = str(parsed("organization"))
    try:
        client_profile = ClientCertificateProfile(
            crl_url=parsed("crl_url") or f"{base}/crl/issuing.crl",
            ocsp_url=parsed("ocsp_url") or f"{base}/ocsp",
            ca_issuers_url=parsed("ca_issuers_url") or f"{base}/ca/issuing.der",
            user_uri_prefix=parsed("user_uri_prefix"),
            not_before_skew=timedelta(seconds=parsed("not_before_skew_seconds")),
            delta_crl_url=parsed("delta_crl_url") or f"{base}/crl/issuing-delta.crl",
        )
        root_crl_url = parsed("root_crl_url") or f"{base}/crl/root.crl"
        require_url(root_crl_url, "root_crl_url", frozenset({"http"}))
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    return Settings(
        data_dir=data_dir,
        database_url=parsed("database_url") or f"sqlite:///{data_dir / 'ca.db'}",
        database_readers=parsed("database_readers"),
        database_commit_delay_ms=parsed("database_commit_delay_ms"),
        grpc_address=parsed("grpc_address"),
        grpc_workers=parsed("grpc_workers"),
        key_passphrase=raw.secret("key_passphrase"),
        key_algorithm=parsed("key_algorithm"),
        pkcs11=_pkcs11(raw),
        organization=organization,
        root_name=parsed("root_name") or f"{organization} Root CA",
        issuing_name=parsed("issuing_name") or f"{organization} Issuing CA",
        client_profile=client_profile,
        root_crl_url=root_crl_url,
        arl_validity_days=parsed("arl_validity_days"),
        http_address=parsed("http_address"),
        http_max_connections=parsed("http_max_connections"),
        http_head_timeout=parsed("http_head_timeout"),
        descriptor_reserve=parsed("descriptor_reserve"),
        crl_validity_hours=parsed("crl_validity_hours"),
        crl_delta_validity_minutes=parsed("crl_delta_validity_minutes"),
        crl_interval_minutes=parsed("crl_interval_minutes"),
        ocsp_validity_minutes=parsed("ocsp_validity_minutes"),
        ocsp_cache_bytes=parsed("ocsp_cache_bytes"),
        pkcs12_kdf_rounds=parsed("pkcs12_kdf_rounds"),
        log_level=str(parsed("log_level")).upper(),
        redis_url=parsed("redis_url"),
        redis_prefix=parsed("redis_prefix"),
        code_key=raw.secret("code_key"),
        smtp_host=parsed("smtp_host"),
        smtp_port=parsed("smtp_port"),
        smtp_security=_choice(
            parsed("smtp_security"), ("none", "starttls", "tls"), "CA_SMTP_SECURITY"
        ),
        smtp_username=parsed("smtp_username"),
        smtp_password=raw.secret("smtp_password"),
        mail_from=parsed("mail_from"),
        mail_worker=parsed("mail_worker"),
        mail_poll_seconds=parsed("mail_poll_seconds"),
        notice_interval_seconds=parsed("notice_interval_seconds"),
        lease_seconds=parsed("lease_seconds"),
        password_hash_memory_kib=parsed("password_hash_memory_kib"),
        password_hash_time_cost=parsed("password_hash_time_cost"),
        password_hash_concurrency=parsed("password_hash_concurrency")
        or max(1, (os.cpu_count() or 1) // 2),
        password_hash_queue=parsed("password_hash_queue"),
        initial_password_days=parsed("initial_password_days"),
        lock_seconds=parsed("lock_seconds"),
        code_ttl_seconds=parsed("code_ttl_seconds"),
        resend_interval_seconds=parsed("resend_interval_seconds"),
        sources=raw.sources,
    )


def _choice(value: str, choices: tuple[str, ...], env: str) -> str:
    if value not in choices:
        raise ConfigurationError(f"{env}: must be one of {', '.join(choices)}")
    return value


def configuration_reference() -> str:
    """The Markdown table of every setting, for the README."""
    return shared.configuration_reference(
        SETTINGS,
        [
            (
                "CA_ADMIN_CREDENTIALS",
                "`<data_dir>/credentials/operator`",
                "ca-admin: directory with the gRPC client credential (`cert.pem`, `key.pem`, "
                "`ca.pem`).",
            )
        ],
    )
