"""Who is calling: the role written in the caller's client certificate (subject OU), and
which roles may call which method. The TLS layer has already checked that the certificate
chains to the services CA; this module only reads it."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import NameOID

from ca_service.domain.profiles import Caller, Role

__all__ = [
    "METHOD_ROLES",
    "OPEN_SERVICE_PREFIXES",
    "allowed_roles",
    "caller_from_pem",
]

_SERVICE = "/ca.v1.CertificateAuthority/"
# Every role that works with certificates; the procedure portal (Role.PORTAL) is not one
# of them: it reads the public facts (rules, CA chain) and uses the e-mail methods only.
_CERTIFICATES = frozenset({Role.OPERATOR, Role.GATEWAY, Role.SERVICE})
_ALL = frozenset(Role)

_OPERATOR = frozenset({Role.OPERATOR})
_GATEWAY = frozenset({Role.GATEWAY})
_PORTAL = frozenset({Role.PORTAL})
_ADMINISTRATION = frozenset({Role.OPERATOR, Role.GATEWAY})
# SPEC D1: which purpose each of these may use is the service's rule
# (ca_service.domain.email_verification.may_use).
_EMAIL_VERIFICATION = frozenset({Role.OPERATOR, Role.GATEWAY, Role.PORTAL})

METHOD_ROLES: Mapping[str, frozenset[Role]] = {
    _SERVICE + "SignCsr": frozenset({Role.OPERATOR, Role.SERVICE}),
    # A gateway may issue only against an issuance ticket (checked by the servicer).
    _SERVICE + "IssueCertificate": _CERTIFICATES,
    _SERVICE + "GetCertificate": _CERTIFICATES,
    _SERVICE + "ListCertificates": _CERTIFICATES,
    _SERVICE + "GetCaChain": _ALL,
    _SERVICE + "GetRules": _ALL,
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
    _SERVICE + "WatchRevocations": _CERTIFICATES,
    _SERVICE + "ListAudit": _OPERATOR,
    _SERVICE + "VerifyAudit": _OPERATOR,
    _SERVICE + "RequestEmailVerification": _EMAIL_VERIFICATION,
    _SERVICE + "ConfirmEmailVerification": _EMAIL_VERIFICATION,
    _SERVICE + "SendProcedureCompletionMail": _PORTAL,
    # Issue 11: the user's own password change and code resending (through the screens),
    # and a master user's revocations (acting_user_id) or the operator's.
    _SERVICE + "ChangePassword": _GATEWAY,
    _SERVICE + "ResendCode": _GATEWAY,
    _SERVICE + "RevokeUserCertificates": _ADMINISTRATION,
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
def caller_from_pem(pem: bytes) -> Caller | None:
    """The caller's role (subject OU) and credential name (subject CN), or None when its
    certificate names no known role."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    units = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(units) != 1:
        return None
    try:
        role = Role(units[0].value)
    except ValueError:
        return None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return Caller(role, str(names[0].value) if len(names) == 1 else "")
