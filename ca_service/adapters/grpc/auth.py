"""Who is calling: the role written in the caller's client certificate (subject OU), and
which roles may call which method. The TLS layer has already checked that the certificate
chains to the services CA; this module only reads it."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import NameOID

from ca_service.domain.profiles import Role

__all__ = ["METHOD_ROLES", "OPEN_SERVICE_PREFIXES", "allowed_roles", "role_from_pem"]

_SERVICE = "/ca.v1.CertificateAuthority/"
_ALL = frozenset(Role)

_OPERATOR = frozenset({Role.OPERATOR})
_GATEWAY = frozenset({Role.GATEWAY})
_ADMINISTRATION = frozenset({Role.OPERATOR, Role.GATEWAY})

METHOD_ROLES: Mapping[str, frozenset[Role]] = {
    _SERVICE + "SignCsr": frozenset({Role.OPERATOR, Role.SERVICE}),
    # A gateway may issue only against an issuance ticket (checked by the servicer).
    _SERVICE + "IssueCertificate": _ALL,
    _SERVICE + "GetCertificate": _ALL,
    _SERVICE + "ListCertificates": _ALL,
    _SERVICE + "GetCaChain": _ALL,
    _SERVICE + "StartAuthentication": _GATEWAY,
    _SERVICE + "VerifyCode": _GATEWAY,
    _SERVICE + "Login": _GATEWAY,
    _SERVICE + "CreateOrganization": _OPERATOR,
    _SERVICE + "RegisterMaster": _ADMINISTRATION,
    # A gateway acts for a master user (acting_user_id); the operator for itself.
    _SERVICE + "CreateUser": _ADMINISTRATION,
    _SERVICE + "GetUser": _ADMINISTRATION,
    _SERVICE + "ListUsers": _ADMINISTRATION,
    _SERVICE + "UnlockUser": _ADMINISTRATION,
    _SERVICE + "ResetPassword": _ADMINISTRATION,
    _SERVICE + "ListMail": _OPERATOR,
    _SERVICE + "RevokeCertificate": _OPERATOR,
    _SERVICE + "WatchRevocations": _ALL,
    _SERVICE + "ListAudit": _OPERATOR,
    _SERVICE + "VerifyAudit": _OPERATOR,
}

# Health checking and reflection answer any caller that passed the mTLS handshake.
OPEN_SERVICE_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def allowed_roles(method: str) -> frozenset[Role] | None:
    """The roles that may call ``method``; None when the method is open to every caller.
    Methods missing from the table are closed to everyone (fail closed)."""
    if method.startswith(OPEN_SERVICE_PREFIXES):
        return None
    return METHOD_ROLES.get(method, frozenset())


@lru_cache(maxsize=1024)
def role_from_pem(pem: bytes) -> Role | None:
    """The caller's role, or None when its certificate names no known role."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    units = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(units) != 1:
        return None
    try:
        return Role(units[0].value)
    except ValueError:
        return None
