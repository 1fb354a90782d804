"""``ca-admin``: the operator's command line, a gRPC client of the CA over mTLS."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from google.protobuf.json_format import MessageToDict

from ca_service.adapters.keystore import CaFiles
from ca_service.api import pb
from ca_service.cli.common import credentials_dir
from ca_service.client import api_error, secure_channel, stub
from ca_service.config import load_settings
from ca_service.domain.accounts import AccountRole
from ca_service.domain.mail import MailStatus
from ca_service.domain.rules import EMAIL_LINK_TTL
from ca_service.domain.validity import JAPAN, RENEWAL_WINDOW_DAYS
from ca_service.errors import CAError
from ca_service.shared.cli import fail
from ca_service.shared.japan import lock_end_minute

__all__ = ["main"]

PROGRAM = "ca-admin"
_STATUS_NAMES = {
    pb.CERTIFICATE_STATUS_VALID: "valid",
    pb.CERTIFICATE_STATUS_EXPIRED: "expired",
    pb.CERTIFICATE_STATUS_REVOKED: "revoked",
    pb.CERTIFICATE_STATUS_NOT_YET_VALID: "not yet valid",
}


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Operate the private CA.")
    parser.add_argument("--address", help="CA gRPC address host:port (CA_GRPC_ADDRESS)")
    parser.add_argument(
        "--data-dir", help="CA data directory holding credentials/operator (CA_DATA_DIR)"
    )
    parser.add_argument(
        "--credentials",
        type=Path,
        help="directory with cert.pem, key.pem "
        "and ca.pem (default: DATA_DIR/credentials/operator; CA_ADMIN_CREDENTIALS)",
    )
    parser.add_argument("--server-name", help="name to check in the server certificate")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    groups = parser.add_subparsers(dest="group", required=True)

    cert = groups.add_parser("cert", help="certificates").add_subparsers(
        dest="action", required=True
    )
    sign = cert.add_parser("sign", help="sign a CSR for a user with an account")
    sign.add_argument("--csr", type=Path, required=True)
    issue = cert.add_parser(
        "issue", help="issue a key and certificate as PKCS#12 for a user with an account"
    )
    for command in (sign, issue):
        command.add_argument("--user", required=True)
        command.add_argument(
            "--org",
            default="",
            help="optional check: the organisation (ID or name) the user must belong to; "
            "the certificate's organisation always comes from the account",
        )
        command.add_argument(
            "--override-renewal-window",
            action="store_true",
            help="issue although the user holds a valid certificate whose renewal window "
            f"({RENEWAL_WINDOW_DAYS} days before expiry) has not opened; audited",
        )
    sign.add_argument("--out", type=Path, help="write the certificate (PEM) here")
    issue.add_argument("--out-dir", type=Path, required=True)
    issue.add_argument(
        "--password-file",
        type=Path,
        help="file whose first line is the PKCS#12 password (else a prompt)",
    )
    show = cert.add_parser("show", help="show one certificate")
    show.add_argument("key", metavar="SERIAL|FINGERPRINT")
    revoke = cert.add_parser("revoke", help="revoke a certificate, or all of a user's")
    revoke.add_argument("serial", nargs="?", metavar="SERIAL")
    revoke.add_argument("--user", help="revoke every valid certificate of this user")
    revoke.add_argument(
        "--reason",
        default="unspecified",
        help="RFC 5280 reason: unspecified, key_compromise, "
        "affiliation_changed, superseded, cessation_of_operation, "
        "certificate_hold, privilege_withdrawn, ca_compromise, aa_compromise",
    )
    revoke.add_argument("--invalidity-date", help="ISO 8601 time the key became unsafe")
    listing = cert.add_parser("list", help="list a user's certificates")
    listing.add_argument("--user", required=True)

    org = groups.add_parser("org", help="organisations").add_subparsers(
        dest="action", required=True
    )
    org_create = org.add_parser(
        "create", help="create an organisation; prints the master user's initial password once"
    )
    org_create.add_argument("--name", required=True)
    org_create.add_argument("--id", default="", help="organisation ID (default: generated)")

    user = groups.add_parser("user", help="users").add_subparsers(dest="action", required=True)
    user_create = user.add_parser(
        "create", help="register a general user; prints its initial password once"
    )
    user_create.add_argument("--org", required=True, help="organisation ID")
    user_create.add_argument("--user", required=True)
    user_create.add_argument("--email", required=True)
    user_show = user.add_parser("show", help="a user's state: active, locked until, blocked")
    user_show.add_argument("user_id", metavar="USER")
    user_list = user.add_parser("list", help="the users of an organisation")
    user_list.add_argument("--org", required=True, help="organisation ID")
    user_unlock = user.add_parser("unlock", help="clear a lock or block")
    user_unlock.add_argument("user_id", metavar="USER")
    user_reset = user.add_parser(
        "reset-password", help="issue a new initial password; printed once"
    )
    user_reset.add_argument("user_id", metavar="USER")
    user_email = user.add_parser(
        "set-email",
        help="change a user's e-mail address: mails a link (valid "
        f"{EMAIL_LINK_TTL // timedelta(hours=1)} hours, single use) to the new address, "
        "which becomes active when the link is opened (SPEC D1)",
    )
    user_email.add_argument("user_id", metavar="USER")
    user_email.add_argument("--email", required=True, help="the new address")
    user_email.add_argument(
        "--link-base",
        required=True,
        help="the page that opens the link: the gateway's /email/verify URL, e.g. "
        "https://portal.example.jp/email/verify",
    )

    audit = groups.add_parser("audit", help="the hash-chained audit log").add_subparsers(
        dest="action", required=True
    )
    audit.add_parser("verify", help="check the whole chain; name the first broken row")
    audit_list = audit.add_parser("list", help="entries, newest first")
    audit_list.add_argument("--user")
    audit_list.add_argument(
        "--action", dest="action_filter", help="e.g. issue, revoke, lock, block, unlock"
    )
    audit_list.add_argument("--since", help="ISO 8601 time (inclusive)")
    audit_list.add_argument("--until", help="ISO 8601 time (exclusive)")
    audit_list.add_argument("--limit", type=int, default=100)

    mail = groups.add_parser("mail", help="the mail outbox").add_subparsers(
        dest="action", required=True
    )
    mail_list = mail.add_parser("list", help="queued and sent mail with status")
    mail_list.add_argument("--status", choices=[str(status) for status in MailStatus])
    mail_list.add_argument("--limit", type=int, default=50)

    ca = groups.add_parser("ca", help="the CA itself").add_subparsers(dest="action", required=True)
    chain = ca.add_parser("chain", help="print the issuing and root CA certificates")
    chain.add_argument("--out", type=Path, help="write the PEM chain here")
    return parser


def _password(path: Path | None) -> str:
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        if not lines or not lines[0]:
            raise UsageError(f"{path} holds no password")
        return lines[0]
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password; use --password-file")
    first = getpass.getpass("PKCS#12 password: ")
    if first != getpass.getpass("Repeat the password: "):
        raise UsageError("the passwords differ")
    return first


def _certificate_dict(message: pb.Certificate) -> dict[str, Any]:
    data = MessageToDict(message, preserving_proto_field_name=True)
    data.pop("der", None)
    data["status"] = _STATUS_NAMES.get(message.status, "unknown")
    data["key_source"] = {pb.KEY_SOURCE_CSR: "csr", pb.KEY_SOURCE_SERVER: "server"}.get(
        message.key_source, "unknown"
    )
    data["pem"] = x509.load_der_x509_certificate(message.der).public_bytes(Encoding.PEM).decode()
    return data


def _human(message: pb.Certificate) -> str:
    def stamp(ts: Any) -> str:
        return str(ts.ToDatetime().isoformat()) + "Z"

    return "\n".join(
        [
            f"serial:       {message.serial_number}",
            f"fingerprint:  {message.fingerprint_sha256}",
            f"user:         {message.user_id}",
            f"organization: {message.organization}",
            f"subject:      {message.subject}",
            f"status:       {_STATUS_NAMES.get(message.status, 'unknown')}",
            f"not before:   {stamp(message.not_before)}",
            f"not after:    {stamp(message.not_after)}",
            f"issued at:    {stamp(message.issued_at)}",
        ]
    )


_USER_STATES = {
    pb.USER_STATE_ACTIVE: "active",
    pb.USER_STATE_LOCKED: "locked",
    pb.USER_STATE_BLOCKED: "blocked",
}
_USER_ROLES = {
    pb.USER_ROLE_MASTER: AccountRole.MASTER.value,
    pb.USER_ROLE_GENERAL: AccountRole.GENERAL.value,
}


def _user_dict(message: pb.User) -> dict[str, Any]:
    data = MessageToDict(message, preserving_proto_field_name=True)
    data["state"] = _USER_STATES.get(message.state, "unknown")
    data["role"] = _USER_ROLES.get(message.role, "unknown")
    data["lock_count"] = message.lock_count
    data["consecutive_failures"] = message.consecutive_failures
    data["password_change_required"] = message.password_change_required
    return data


def _user_state(message: pb.User) -> str:
    state = _USER_STATES.get(message.state, "unknown")
    if message.state == pb.USER_STATE_LOCKED:
        until = lock_end_minute(message.locked_until.ToDatetime(tzinfo=UTC))
        state += f" until {until:%Y-%m-%d %H:%M} JST"
    return state


def _human_user(message: pb.User) -> str:
    return "\n".join(
        [
            f"user:         {message.user_id}",
            f"organization: {message.organization_name} ({message.organization_id})",
            f"role:         {_USER_ROLES.get(message.role, 'unknown')}",
            f"e-mail:       {message.email}",
            f"state:        {_user_state(message)}",
            f"locks:        {message.lock_count} (wrong passwords in a row: "
            f"{message.consecutive_failures})",
            "password:     "
            + (
                "given; the user must change it before issuance or login"
                if message.password_change_required
                else "chosen by the user"
            ),
        ]
    )


def _instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"not an ISO 8601 time: {text}") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=JAPAN)


def _emit(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else human)


def _cert_sign(args: argparse.Namespace, api: Any) -> None:
    try:
        csr = args.csr.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.csr}: {exc.strerror}") from None
    response = api.SignCsr(
        pb.SignCsrRequest(
            csr=csr,
            user_id=args.user,
            organization=args.org,
            override_renewal_window=args.override_renewal_window,
        )
    )
    pem = x509.load_der_x509_certificate(response.certificate.der).public_bytes(Encoding.PEM)
    if args.out:
        args.out.write_bytes(pem)
    data = _certificate_dict(response.certificate)
    human = _human(response.certificate) + (
        f"\nwritten to:   {args.out}" if args.out else "\n" + pem.decode().rstrip()
    )
    _emit(args, data | ({"written_to": str(args.out)} if args.out else {}), human)


def _cert_issue(args: argparse.Namespace, api: Any) -> None:
    password = _password(args.password_file)
    response = api.IssueCertificate(
        pb.IssueCertificateRequest(
            user_id=args.user,
            organization=args.org,
            pkcs12_password=password,
            override_renewal_window=args.override_renewal_window,
        )
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    target = args.out_dir / response.file_name
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(response.pkcs12)
    data = _certificate_dict(response.certificate) | {"pkcs12_file": str(target)}
    _emit(args, data, _human(response.certificate) + f"\npkcs12 file:  {target}")


def _cert_show(args: argparse.Namespace, api: Any) -> None:
    key = args.key.strip().replace(":", "")
    request = (
        pb.GetCertificateRequest(fingerprint_sha256=key)
        if len(key) == 64
        else pb.GetCertificateRequest(serial_number=key)
    )
    message = api.GetCertificate(request)
    _emit(args, _certificate_dict(message), _human(message))


def _cert_list(args: argparse.Namespace, api: Any) -> None:
    certificates = api.ListCertificates(pb.ListCertificatesRequest(user_id=args.user))
    rows = [
        f"{c.serial_number}  {_STATUS_NAMES.get(c.status, 'unknown'):<13}  "
        f"{c.not_after.ToDatetime():%Y-%m-%d %H:%M:%S}Z  {c.fingerprint_sha256[:16]}…"
        for c in certificates.certificates
    ]
    human = (
        "\n".join(
            [
                "serial                            status         not after (UTC)"
                "       fingerprint",
                *rows,
            ]
        )
        if rows
        else f"no certificates for {args.user}"
    )
    _emit(args, [_certificate_dict(c) for c in certificates.certificates], human)


def _org_create(args: argparse.Namespace, api: Any) -> None:
    created = api.CreateOrganization(
        pb.CreateOrganizationRequest(name=args.name, organization_id=args.id)
    )
    expires = created.initial_password_expires_at.ToDatetime(tzinfo=UTC).astimezone(JAPAN)
    data = {
        "organization_id": created.organization.organization_id,
        "name": created.organization.name,
        "initial_password": created.initial_password,
        "initial_password_expires_at": expires.isoformat(),
    }
    _emit(
        args,
        data,
        "\n".join(
            [
                f"organization: {created.organization.name} "
                f"({created.organization.organization_id})",
                f"initial password for the master user (shown once): {created.initial_password}",
                f"valid until:  {expires:%Y-%m-%d %H:%M} JST",
            ]
        ),
    )


def _user_create(args: argparse.Namespace, api: Any) -> None:
    created_user = api.CreateUser(
        pb.CreateUserRequest(organization_id=args.org, user_id=args.user, email=args.email)
    )
    _emit(
        args,
        _user_dict(created_user.user) | {"initial_password": created_user.initial_password},
        _human_user(created_user.user)
        + f"\ninitial password (shown once): {created_user.initial_password}",
    )


def _user_show(args: argparse.Namespace, api: Any) -> None:
    shown = api.GetUser(pb.GetUserRequest(user_id=args.user_id))
    _emit(args, _user_dict(shown), _human_user(shown))


def _user_list(args: argparse.Namespace, api: Any) -> None:
    listed = api.ListUsers(pb.ListUsersRequest(organization_id=args.org)).users
    rows = [
        f"{u.user_id:<12}  {_USER_ROLES.get(u.role, '?'):<7}  {_user_state(u):<30}  {u.email}"
        for u in listed
    ]
    _emit(
        args,
        [_user_dict(u) for u in listed],
        "\n".join(rows) if rows else f"no users in {args.org}",
    )


def _user_unlock(args: argparse.Namespace, api: Any) -> None:
    unlocked = api.UnlockUser(pb.UnlockUserRequest(user_id=args.user_id))
    _emit(args, _user_dict(unlocked), _human_user(unlocked))


def _user_reset_password(args: argparse.Namespace, api: Any) -> None:
    reset = api.ResetPassword(pb.ResetPasswordRequest(user_id=args.user_id))
    reset_data: dict[str, Any] = {
        "user_id": args.user_id,
        "initial_password": reset.initial_password,
    }
    human = f"new initial password for {args.user_id} (shown once): {reset.initial_password}"
    if reset.HasField("expires_at"):
        expires = reset.expires_at.ToDatetime(tzinfo=UTC).astimezone(JAPAN)
        reset_data["expires_at"] = expires.isoformat()
        human += (
            f"\nvalid until {expires:%Y-%m-%d %H:%M} JST; the master user registers "
            "again with it (マスターユーザーの初期登録)"
        )
    _emit(args, reset_data, human)


def _user_set_email(args: argparse.Namespace, api: Any) -> None:
    requested = api.RequestEmailVerification(
        pb.RequestEmailVerificationRequest(
            purpose=pb.EMAIL_PURPOSE_USER_EMAIL_CHANGE,
            user_id=args.user_id,
            address=args.email,
            link_base_url=args.link_base,
        )
    )
    expires = requested.expires_at.ToDatetime(tzinfo=UTC).astimezone(JAPAN)
    _emit(
        args,
        {
            "user_id": args.user_id,
            "sent_to": requested.masked_address,
            "expires_at": expires.isoformat(),
        },
        f"a verification link for {args.user_id} went to {requested.masked_address}; the "
        f"address becomes active when it is opened, until {expires:%Y-%m-%d %H:%M} JST "
        "(the old address is told then)",
    )


def _cert_revoke(args: argparse.Namespace, api: Any) -> None:
    if bool(args.serial) == bool(args.user):
        raise UsageError("give either SERIAL or --user ID")
    revoke_request = pb.RevokeCertificateRequest(reason=args.reason)
    if args.serial:
        revoke_request.serial_number = args.serial
    else:
        revoke_request.user_id = args.user
    if args.invalidity_date:
        revoke_request.invalidity_date.FromDatetime(_instant(args.invalidity_date))
    revoked = api.RevokeCertificate(revoke_request).revocations
    _emit(
        args,
        [MessageToDict(r, preserving_proto_field_name=True) for r in revoked],
        "\n".join(
            f"revoked {r.serial_number} ({r.user_id}), reason {r.reason}, sequence {r.sequence}"
            for r in revoked
        ),
    )


def _audit_verify(args: argparse.Namespace, api: Any) -> None:
    verdict = api.VerifyAudit(pb.VerifyAuditRequest())
    if not verdict.intact:
        raise UsageError(
            f"audit chain broken at row {verdict.first_broken_id}: "
            f"{verdict.problem} ({verdict.rows} rows before it are intact)"
        )
    _emit(
        args,
        MessageToDict(verdict, preserving_proto_field_name=True),
        f"audit chain intact: {verdict.rows} rows",
    )


def _audit_list(args: argparse.Namespace, api: Any) -> None:
    audit_request = pb.ListAuditRequest(
        user_id=args.user or "", action=args.action_filter or "", limit=args.limit
    )
    if args.since:
        audit_request.since.FromDatetime(_instant(args.since))
    if args.until:
        audit_request.until.FromDatetime(_instant(args.until))
    records = api.ListAudit(audit_request).records
    rows = [
        f"{r.id:>7}  {r.at.ToDatetime(tzinfo=UTC).astimezone(JAPAN):%Y-%m-%d %H:%M:%S}"
        f"  {r.actor:<12} {r.action:<16} {r.user_id:<12} {r.details}"
        for r in records
    ]
    _emit(
        args,
        [MessageToDict(r, preserving_proto_field_name=True) for r in records],
        "\n".join(rows) if rows else "no audit entries",
    )


def _mail_list(args: argparse.Namespace, api: Any) -> None:
    mail = api.ListMail(pb.ListMailRequest(status=args.status or "", limit=args.limit)).mail
    rows = [
        f"{m.id:>6}  {m.status:<8}  {m.kind:<8}  {m.attempts:>3}  "
        f"{m.created_at.ToDatetime(tzinfo=UTC).astimezone(JAPAN):%Y-%m-%d %H:%M}  "
        f"{m.recipient}  {m.subject}" + (f"  [{m.last_error}]" if m.last_error else "")
        for m in mail
    ]
    header = "    id  status    kind      try  queued (JST)      recipient  subject"
    _emit(
        args,
        [MessageToDict(m, preserving_proto_field_name=True) for m in mail],
        "\n".join([header, *rows]) if rows else "no mail",
    )


def _ca_chain(args: argparse.Namespace, api: Any) -> None:
    response = api.GetCaChain(pb.GetCaChainRequest())
    if args.out:
        args.out.write_text(response.pem)
    _emit(args, {"pem": response.pem}, response.pem.rstrip())


# ``ca-admin GROUP ACTION`` → its handler (each makes one or two API calls and prints).
Handler = Callable[[argparse.Namespace, Any], None]
_COMMANDS: dict[tuple[str, str], Handler] = {
    ("cert", "sign"): _cert_sign,
    ("cert", "issue"): _cert_issue,
    ("cert", "show"): _cert_show,
    ("cert", "list"): _cert_list,
    ("org", "create"): _org_create,
    ("user", "create"): _user_create,
    ("user", "show"): _user_show,
    ("user", "list"): _user_list,
    ("user", "unlock"): _user_unlock,
    ("user", "reset-password"): _user_reset_password,
    ("user", "set-email"): _user_set_email,
    ("cert", "revoke"): _cert_revoke,
    ("audit", "verify"): _audit_verify,
    ("audit", "list"): _audit_list,
    ("mail", "list"): _mail_list,
    ("ca", "chain"): _ca_chain,
}


def _run(args: argparse.Namespace, api: Any) -> None:
    _COMMANDS[(args.group, args.action)](args, api)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides = {"data_dir": args.data_dir, "grpc_address": args.address}
        settings = load_settings(overrides={k: v for k, v in overrides.items() if v})
        credential = CaFiles(settings.data_dir).client_credential(
            directory=credentials_dir(args.credentials)
        )
        with secure_channel(settings.grpc_address, credential, args.server_name) as channel:
            _run(args, stub(channel))
    except grpc.RpcError as error:
        problem = api_error(error)
        reason = f" ({problem.reason})" if problem.reason else ""
        if problem.code is grpc.StatusCode.UNAVAILABLE and not problem.reason:
            fail(PROGRAM, f"cannot reach the CA at {settings.grpc_address}: {problem.message}")
        fail(PROGRAM, f"{problem.message}{reason}")
    except (CAError, UsageError) as error:
        fail(PROGRAM, str(error))
    except FileExistsError as error:
        fail(PROGRAM, f"{error.filename} already exists; not overwriting it")
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
