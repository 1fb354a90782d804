#!/usr/bin/env python3
"""Prints the Secrets the Kubernetes manifests mount, as one JSON ``List`` for
``kubectl apply -f -``, made from a CA data directory and a directory of secret values.

    ca-service init --data-dir ./ca-data            # on the offline machine, once
    ca-service credential --data-dir ./ca-data --name probe --role service
    ca-service server-cert --data-dir ./ca-data --name gateway --dns portal.example.jp
    ca-service credential --data-dir ./ca-data --name portal --role portal
    python3 deploy/kubernetes/make-secrets.py --data-dir ./ca-data --values ./values \\
        | kubectl apply -n pki -f -

``--values`` holds one file per value (a trailing newline is dropped where the programs
drop it): ``key-passphrase`` (CA_KEY_PASSPHRASE), ``smtp-password`` (empty when the SMTP
server wants none), ``database-url`` (postgresql://user:password@host:5432/db: several CA
pods need one PostgreSQL; the SQLite default would be a file in each pod's memory, lost
with the pod), ``ca-redis-url``, ``gateway-redis-url``, ``portal-database-url`` (the
procedure portal's own PostgreSQL database, never the CA's) and ``card-trust.pem`` (the
identity card CAs' certificates the gateway's card routes accept, taken as they are).

What stays out on purpose: the root CA's key (``root/key.pem``: keep it offline and sign
the root's CRL there with ``ca-service sign-arl``), the services CA's key
(``services/key.pem``: ``ca-service credential`` runs where it is), the operator's
credential and any other file of the data directory. Standard library only; nothing is
written to disk.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["SECRETS", "main", "secrets"]

LABELS = {"app.kubernetes.io/part-of": "private-ca"}

# Secret name -> key -> where the value comes from: ("data", path in the data directory)
# or ("value", file name in --values). The manifests mount exactly these keys
# (tests/k8s checks it both ways).
SECRETS: Mapping[str, Mapping[str, tuple[str, str]]] = {
    # Copied into each CA pod's data directory by its init container.
    "ca-service-keys": {
        "root-ca.pem": ("data", "root/ca.pem"),
        "root-crl.der": ("data", "root/crl.der"),
        "issuing-ca.pem": ("data", "issuing/ca.pem"),
        "issuing-key.pem": ("data", "issuing/key.pem"),
        "services-ca.pem": ("data", "services/ca.pem"),
        "grpc-server.pem": ("data", "grpc/server.pem"),
        "grpc-key.pem": ("data", "grpc/key.pem"),
        "code-key": ("data", "secrets/code-key"),
    },
    "ca-service-secrets": {
        "key-passphrase": ("value", "key-passphrase"),
        "smtp-password": ("value", "smtp-password"),
        "config.toml": ("value", "config.toml"),
    },
    # The CA pods' own probe credential (`ca-service healthcheck`).
    "ca-service-probe": {
        "cert.pem": ("data", "credentials/probe/cert.pem"),
        "key.pem": ("data", "credentials/probe/key.pem"),
        "ca.pem": ("data", "credentials/probe/ca.pem"),
    },
    "ca-gateway-tls": {
        "cert.pem": ("data", "tls/gateway/cert.pem"),
        "key.pem": ("data", "tls/gateway/key.pem"),
        "client-trust.pem": ("data", "tls/gateway/client-trust.pem"),
    },
    "ca-gateway-credential": {
        "cert.pem": ("data", "credentials/gateway/cert.pem"),
        "key.pem": ("data", "credentials/gateway/key.pem"),
        "ca.pem": ("data", "credentials/gateway/ca.pem"),
    },
    "ca-gateway-secrets": {
        "redis-url": ("value", "gateway-redis-url"),
    },
    # Public certificates, but a file of the site's like the rest: one way in for all.
    "ca-gateway-card": {
        "card-trust.pem": ("value", "card-trust.pem"),
    },
    # The procedure portal's gRPC credential (role portal) and its own database.
    "ca-portal-credential": {
        "cert.pem": ("data", "credentials/portal/cert.pem"),
        "key.pem": ("data", "credentials/portal/key.pem"),
        "ca.pem": ("data", "credentials/portal/ca.pem"),
    },
    "ca-portal-secrets": {
        "database-url": ("value", "portal-database-url"),
    },
}

_HOW = {
    "credentials/probe": "ca-service credential --name probe --role service",
    "tls/gateway": "ca-service server-cert --name gateway --dns <the portal's name>",
    "credentials/portal": "ca-service credential --name portal --role portal",
}
_POSTGRESQL = ("postgresql://", "postgres://")


class Refused(Exception):
    """What the operator must fix; printed as one line."""


def _value(values: Path, name: str) -> str:
    path = values / name
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise Refused(f"cannot read {path}: {exc.strerror}") from None


def _toml_string(value: str) -> str:
    # A TOML basic string: JSON's escapes are a subset TOML reads the same way.
    return json.dumps(value, ensure_ascii=False)


def _config_toml(values: Path) -> bytes:
    """config.toml (CA_CONFIG_FILE): the settings whose values carry passwords."""
    database_url = _value(values, "database-url")
    if not database_url.startswith(_POSTGRESQL):
        raise Refused(
            "database-url must be a postgresql:// URL: every CA pod must share one "
            "database (the SQLite default would live in each pod's memory)"
        )
    redis_url = _value(values, "ca-redis-url")
    return (
        f"database_url = {_toml_string(database_url)}\nredis_url = {_toml_string(redis_url)}\n"
    ).encode()


def _database(url: str) -> tuple[str, int, str]:
    """Which database a PostgreSQL URL names: host, port, database name."""
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port or 5432, parts.path.strip("/"))


def _portal_database_url(values: Path) -> bytes:
    url = _value(values, "portal-database-url")
    if not url.startswith(_POSTGRESQL):
        raise Refused(
            "portal-database-url must be a postgresql:// URL: every portal pod must share one "
            "database (an SQLite file would be each pod's own)"
        )
    if _database(url) == _database(_value(values, "database-url")):
        raise Refused("portal-database-url names the CA's database: the portal needs its own")
    return url.encode()


def _card_trust(values: Path) -> bytes:
    path = values / "card-trust.pem"
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise Refused(f"cannot read {path}: {exc.strerror}") from None
    # The gateway would stop at start-up on anything else; say so here, before the cluster.
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise Refused(f"{path} holds no PEM certificate (the identity card CAs')")
    return pem


def _content(data_dir: Path, values: Path, source: str, name: str) -> bytes:
    if source == "value":
        if name == "config.toml":
            return _config_toml(values)
        if name == "portal-database-url":
            return _portal_database_url(values)
        if name == "card-trust.pem":
            return _card_trust(values)
        return _value(values, name).encode()
    path = data_dir / name
    try:
        return path.read_bytes()
    except OSError as exc:
        hint = next((f" (make it with `{how}`)" for part, how in _HOW.items() if part in name), "")
        raise Refused(f"cannot read {path}: {exc.strerror}{hint}") from None


def secrets(data_dir: Path, values: Path) -> dict[str, object]:
    """The Secrets as a Kubernetes ``List``."""
    items = []
    for secret, keys in SECRETS.items():
        data = {
            key: base64.b64encode(_content(data_dir, values, source, name)).decode()
            for key, (source, name) in keys.items()
        }
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret, "labels": dict(LABELS)},
                "type": "Opaque",
                "data": data,
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="made by ca-service init")
    parser.add_argument("--values", type=Path, required=True, help="directory of value files")
    args = parser.parse_args(argv)
    try:
        result = secrets(args.data_dir, args.values)
    except Refused as refused:
        print(f"make-secrets: {refused}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
