"""``ca-service``: create a CA (init), run the server (serve), issue gRPC client
credentials, print the configuration reference."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from ca_service.adapters.keystore import CaFiles
from ca_service.adapters.sql.database import open_database
from ca_service.adapters.sql.migrations import migrate
from ca_service.app import serve, serve_workers
from ca_service.cli.common import configure_logging, fail
from ca_service.config import Settings, configuration_reference, load_settings
from ca_service.domain.profiles import Role
from ca_service.errors import CAError

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
    files = CaFiles(settings.data_dir)
    files.initialise(
        settings.ca_profile, settings.key_algorithm, settings.passphrase(), datetime.now(UTC)
    )
    database = open_database(settings.database_url, readers=1)
    try:
        migrate(database)
    finally:
        database.close()
    print(f"created the CA in {settings.data_dir}")
    print(f"  root CA:     {files.path('root', 'ca.pem')}")
    print(f"  issuing CA:  {files.path('issuing', 'ca.pem')}")
    print(f"  operator:    {files.path('credentials', 'operator')} (gRPC client credential)")
    print(f"  gateway:     {files.path('credentials', 'gateway')} (gRPC client credential)")
    print(f"  database:    {database.description}")


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
    }
    try:
        settings = load_settings(overrides={k: v for k, v in overrides.items() if v})
        configure_logging(settings.log_level)
        if args.command == "init":
            _init(settings)
        elif args.command == "serve":
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
            path = CaFiles(settings.data_dir).issue_server_certificate(
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
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
