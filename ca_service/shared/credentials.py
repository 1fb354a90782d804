"""The gRPC client credential a program presents to the CA: ``cert.pem``, ``key.pem`` and
``ca.pem`` (the services CA its server certificate chains to) in one directory, as
``ca-service init`` and ``ca-service credential NAME`` write them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ca_service.shared.errors import ConfigError

__all__ = ["ClientCredential", "load_credential"]


@dataclass(frozen=True)
class ClientCredential:
    certificate_pem: bytes
    key_pem: bytes
    trust_pem: bytes


def load_credential(directory: Path) -> ClientCredential:
    """The credential in ``directory``; :class:`ConfigError` when a file cannot be read."""
    try:
        return ClientCredential(
            certificate_pem=(directory / "cert.pem").read_bytes(),
            key_pem=(directory / "key.pem").read_bytes(),
            trust_pem=(directory / "ca.pem").read_bytes(),
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot read the gRPC client credential in {directory}: {exc.strerror}"
        ) from None
