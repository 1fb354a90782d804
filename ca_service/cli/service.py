"""``ca-service``: create a CA (init), run the server (serve), issue gRPC client
credentials, keep the root's CRL and the issuing CA's certificate current (sign-arl,
upgrade-issuing), ask a running CA's health (healthcheck), print the configuration reference."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ca_service.adapters.keystore import CaFiles, open_ca_files
from ca_service.adapters.sql.database import open_database, sqlite_path
from ca_service.adapters.sql.migrations import migrate
from ca_service.cli.common import credentials_dir
from ca_service.config import Settings, configuration_reference, load_settings
from ca_service.domain.profiles import Role
from ca_service.errors import CAError, ConfigurationError
from ca_service.shared.cli import configure_logging, fail
from ca_service.shared.errors import ConfigError

__all__ = ["main"]

PROGRAM = "ca-service"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Private certificate authority.")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--data-dir", help="CA data directory (CA_DATA_DIR)")
        return sub

    init = with_data_dir(
        commands.add_parser(
            "init", help="create the root and issuing CA, the schema and the operator credential"
        )
    )
    init.add_argument(
        "--key-algorithm",
        choices=["ec-p256", "ec-p384", "rsa-3072"],
        help="CA key algorithm (CA_KEY_ALGORITHM, default ec-p256)",
    )
    init.add_argument("--organization", help="organisation in the CA names (CA_ORGANIZATION)")
    init.add_argument(
        "--pkcs11-module",
        help="PKCS#11 module of the HSM that makes and keeps the issuing CA's and the OCSP "
        "responder's keys (CA_PKCS11_MODULE)",
    )
    init.add_argument("--pkcs11-token", help="label of the token in it (CA_PKCS11_TOKEN)")
    init.add_argument(
        "--pkcs11-pin-file", help="file holding the token's user PIN (CA_PKCS11_PIN_FILE)"
    )

    serve = with_data_dir(commands.add_parser("serve", help="run the gRPC API"))
    serve.add_argument("--grpc-address", help="host:port to listen on (CA_GRPC_ADDRESS)")
    # Set by serve_workers for its children; not for people.
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)

    with_data_dir(commands.add_parser("migrate", help="apply schema migrations"))

    credential = with_data_dir(
        commands.add_parser(
            "credential", help="issue a gRPC client credential into credentials/NAME"
        )
    )
    credential.add_argument("--name", required=True)
    credential.add_argument("--role", required=True, choices=[role.value for role in Role])

    server_cert = with_data_dir(
        commands.add_parser(
            "server-cert",
            help="issue a TLS server certificate (e.g. the gateway's HTTPS) into tls/NAME",
        )
    )
    server_cert.add_argument("--name", required=True)
    server_cert.add_argument("--dns", action="append", default=[], help="DNS name (repeat)")
    server_cert.add_argument("--ip", action="append", default=[], help="IP address (repeat)")

    with_data_dir(
        commands.add_parser(
            "upgrade-issuing",
            help="re-issue the issuing CA certificate (same key, subject and validity) so that "
            "it names the root CRL and certificate; nothing to do when it already does",
        )
    )
    with_data_dir(
        commands.add_parser(
            "sign-arl", help="sign a new root CRL (ARL) now, valid for CA_ARL_VALIDITY_DAYS"
        )
    )

    healthcheck = with_data_dir(
        commands.add_parser(
            "healthcheck",
            help="ask a running CA's gRPC health service over mTLS: exit 0 when SERVING "
            "(for probes)",
        )
    )
    healthcheck.add_argument(
        "--address",
        help="host:port to ask (default: CA_GRPC_ADDRESS, a wildcard host as 127.0.0.1)",
    )
    healthcheck.add_argument(
        "--credential",
        type=Path,
        help="directory with the client credential cert.pem, key.pem and ca.pem, any role "
        "(default: CA_ADMIN_CREDENTIALS, else DATA_DIR/credentials/operator)",
    )
    healthcheck.add_argument("--server-name", help="name to check in the server certificate")
    healthcheck.add_argument(
        "--service", default="", help="service name to ask about (default: the whole server)"
    )
    healthcheck.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)"
    )

    backup = with_data_dir(
        commands.add_parser(
            "backup",
            help="copy the database (one consistent snapshot, while the CA runs) and the data "
            "directory into a new directory, with a manifest of SHA-256s",
        )
    )
    backup.add_argument("--to", required=True, type=Path, help="new or empty directory")
    restore = with_data_dir(
        commands.add_parser(
            "restore",
            help="restore a backup into an empty database (CA_DATABASE_URL) and a data "
            "directory without a CA; CRL numbers continue above any used before",
        )
    )
    restore.add_argument("--from", dest="source", required=True, type=Path)

    commands.add_parser("config-reference", help="print every setting as a Markdown table")
    return parser


def _use_uvloop() -> None:
    """uvloop roughly doubles what the HTTP endpoints (OCSP, CRL) answer per second; gRPC
    runs on it too. Without it (not installable somewhere) the standard loop is used."""
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install()


def _init(settings: Settings) -> None:
    files = open_ca_files(settings.data_dir, settings.pkcs11)
    files.initialise(
        settings.ca_profile,
        settings.key_algorithm,
        settings.passphrase(),
        datetime.now(UTC),
        settings.issuing_urls,
        timedelta(days=settings.arl_validity_days),
    )
    database = open_database(settings.database_url, readers=1)
    try:
        migrate(database)
    finally:
        database.close()
    print(f"created the CA in {settings.data_dir}")
    print(f"  root CA:     {files.path('root', 'ca.pem')}")
    print(f"  root CRL:    {files.path('root', 'crl.der')} (served at {settings.root_crl_url})")
    print(f"  issuing CA:  {files.path('issuing', 'ca.pem')}")
    if settings.pkcs11 is not None:
        print(
            f"  issuing key: PKCS#11 token {settings.pkcs11.token!r}, label "
            f"{settings.pkcs11.issuing_key_label!r} (not extractable)"
        )
    print(f"  operator:    {files.path('credentials', 'operator')} (gRPC client credential)")
    print(f"  gateway:     {files.path('credentials', 'gateway')} (gRPC client credential)")
    print(f"  database:    {database.description}")


def _upgrade_issuing(settings: Settings) -> None:
    files = open_ca_files(settings.data_dir, settings.pkcs11)
    kept = files.upgrade_issuing(
        settings.passphrase(),
        settings.issuing_urls,
        datetime.now(UTC),
        timedelta(days=settings.arl_validity_days),
    )
    if kept is None:
        print(
            f"the issuing CA certificate already names {settings.root_crl_url} and "
            f"{settings.root_ca_issuers_url}; nothing to do"
        )
        return
    print(f"re-issued {files.path('issuing', 'ca.pem')} (same key, subject and validity)")
    print(f"  it names the root CRL {settings.root_crl_url}")
    print(f"  and the root certificate {settings.root_ca_issuers_url}")
    print(f"  the previous certificate is kept as {kept}")
    print("restart every ca-service process so that they serve the new certificate")


def _sign_arl(settings: Settings) -> None:
    arl = CaFiles(settings.data_dir).arl(
        settings.passphrase(),
        datetime.now(UTC),
        timedelta(days=settings.arl_validity_days),
        force=True,
    )
    print(f"signed the root CRL number {arl.number}, next update {arl.next_update.isoformat()}")


def _database_file(settings: Settings) -> Path | None:
    if not settings.database_url.startswith("sqlite:"):
        return None
    return sqlite_path(settings.database_url)


def _backup(settings: Settings, target: Path) -> None:
    from ca_service.adapters.backup import create_backup

    database = open_database(settings.database_url, readers=1)
    try:
        manifest = create_backup(
            settings.data_dir,
            database,
            target,
            datetime.now(UTC),
            database_file=_database_file(settings),
            pkcs11=settings.pkcs11 is not None,
        )
    finally:
        database.close()
    rows = ", ".join(f"{name} {table.rows}" for name, table in manifest.tables.items())
    print(f"backed up {settings.data_dir} and the database into {target}")
    print(f"  rows: {rows}")
    print(f"  files: {len(manifest.files)}; CRL number {manifest.crl_number}")
    if manifest.pkcs11:
        print(
            "  the keys in the PKCS#11 token are not in it: back the token up with the HSM's tools"
        )


def _restore(settings: Settings, source: Path) -> None:
    from ca_service.adapters.backup import restore_backup

    database = open_database(settings.database_url, readers=1)
    try:
        summary = restore_backup(source, settings.data_dir, database, datetime.now(UTC))
    finally:
        database.close()
    rows = ", ".join(f"{name} {count}" for name, count in summary.rows.items())
    print(
        f"restored the backup of {summary.manifest.created_at.isoformat()} into {settings.data_dir}"
    )
    print(f"  database: {database.description}; rows: {rows}")
    print(f"  audit chain verified over {summary.audit_rows} rows; the restore is recorded in it")
    print(f"  CRL numbers continue above {summary.crl_number}")
    if summary.manifest.pkcs11:
        print("  the issuing CA's key is in the PKCS#11 token: set CA_PKCS11_* to reach it")


def _healthcheck(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: a probe runs this every few seconds and needs none of the server.
    from ca_service.cli.healthcheck import check_health, probe_address

    directory = credentials_dir(args.credential)
    credential = CaFiles(settings.data_dir).client_credential(directory=directory)
    try:
        address = args.address or probe_address(settings.grpc_address)
    except ValueError as exc:
        raise ConfigurationError(f"CA_GRPC_ADDRESS: {exc}") from None
    answer = check_health(
        address,
        credential,
        service=args.service,
        server_name=args.server_name,
        timeout=args.timeout,
    )
    if not answer.serving:
        print(f"{PROGRAM}: {address} is not serving: {answer.detail}", file=sys.stderr)
        return 1
    print(f"{address}: {answer.detail}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config-reference":
        print(configuration_reference())
        return 0
    overrides = {
        "data_dir": getattr(args, "data_dir", None),
        "key_algorithm": getattr(args, "key_algorithm", None),
        "organization": getattr(args, "organization", None),
        "grpc_address": getattr(args, "grpc_address", None),
        "pkcs11_module": getattr(args, "pkcs11_module", None),
        "pkcs11_token": getattr(args, "pkcs11_token", None),
    }
    environ = dict(os.environ)
    if getattr(args, "pkcs11_pin_file", None):
        # A secret comes from a file, never from the command line itself.
        environ["CA_PKCS11_PIN_FILE"] = args.pkcs11_pin_file
    try:
        settings = load_settings(environ, overrides={k: v for k, v in overrides.items() if v})
        configure_logging(settings.log_level)
        if args.command == "init":
            _init(settings)
        elif args.command == "healthcheck":
            return _healthcheck(settings, args)
        elif args.command == "serve":
            # Imported here: the other commands (a probe's healthcheck above all) need none
            # of the server's wiring, which takes most of the start-up time.
            from ca_service.app import serve, serve_workers

            if settings.grpc_workers > 1 and not args.reuse_port:
                return serve_workers(settings)
            _use_uvloop()
            asyncio.run(serve(settings, reuse_port=args.reuse_port))
        elif args.command == "migrate":
            database = open_database(settings.database_url, readers=1)
            try:
                applied = migrate(database)
            finally:
                database.close()
            print(f"applied migrations: {applied or 'none'}")
        elif args.command == "backup":
            _backup(settings, args.to)
        elif args.command == "restore":
            _restore(settings, args.source)
        elif args.command == "upgrade-issuing":
            _upgrade_issuing(settings)
        elif args.command == "sign-arl":
            _sign_arl(settings)
        elif args.command == "credential":
            path = CaFiles(settings.data_dir).issue_client_credential(
                settings.ca_profile,
                settings.passphrase(),
                args.name,
                Role(args.role),
                datetime.now(UTC),
            )
            print(f"issued {args.role} credential in {path}")
        elif args.command == "server-cert":
            path = open_ca_files(settings.data_dir, settings.pkcs11).issue_server_certificate(
                settings.ca_profile,
                settings.passphrase(),
                args.name,
                args.dns,
                args.ip,
                datetime.now(UTC),
            )
            print(f"issued a TLS server certificate in {path}")
    except CAError as error:
        fail(PROGRAM, error.message)
    except ConfigError as error:  # a worker process failed to start
        fail(PROGRAM, str(error))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
