"""ca-service init and ca-admin, run as the operator would run them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ca_service.adapters.keystore import CaFiles
from tests.support import (
    PASSPHRASE,
    CaProcess,
    ca_env,
    create_user,
    init_ca,
    make_csr,
    openssl_verify,
    pbes2_parameters,
    pkilint_certificate,
    run,
    tool,
)

ORG = "テスト株式会社"


def _admin(server: CaProcess, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
    env = ca_env(server.data_dir, CA_GRPC_ADDRESS=server.address)
    return run([tool("ca-admin"), *args], env, check=check)


def _csr_file(path: Path) -> Path:
    path.write_bytes(make_csr(encoding=Encoding.PEM))
    return path


def test_init_makes_encrypted_keys_and_refuses_to_overwrite(tmp_path: Path) -> None:
    data_dir = tmp_path / "ca"
    files = init_ca(data_dir)
    salts = set()
    for name in ("root", "issuing", "services", "grpc"):
        key = files.path(name, "key.pem")
        assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        # Issue 9, item 7: read back from the file, PBKDF2-HMAC-SHA256 >= 600,000.
        parameters = pbes2_parameters(key.read_bytes())
        assert (parameters["kdf"], parameters["prf"], parameters["cipher"]) == (
            "pbkdf2",
            "sha256",
            "aes256_cbc",
        )
        assert parameters["iterations"] >= 600_000  # type: ignore[operator]
        salts.add(parameters["salt"])
    assert len(salts) == 4
    assert stat.S_IMODE(files.path("credentials", "operator", "key.pem").stat().st_mode) == 0o600
    # Every directory of the data directory is private, credentials/ included.
    for directory in [data_dir, *(p for p in data_dir.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    gateway = x509.load_pem_x509_certificate(
        files.path("credentials", "gateway", "cert.pem").read_bytes()
    )
    assert gateway.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "gateway"
    )
    before = {p: p.read_bytes() for p in data_dir.rglob("*.pem")}

    again = run([tool("ca-service"), "init"], ca_env(data_dir), check=False)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == (
        f"ca-service: error: a CA already exists in {data_dir}; refusing to overwrite it"
    )
    assert {p: p.read_bytes() for p in data_dir.rglob("*.pem")} == before


def test_serve_encrypts_older_key_files_again_and_tightens_directories(
    tmp_path: Path, redis_server: str
) -> None:
    """A data directory written by an older version (keys under PBKDF2 at 2,048
    iterations, credentials/ 0755) is brought up to today's protection when the CA loads,
    and the CA works with the files it rewrote."""
    from cryptography.hazmat.primitives import serialization

    from ca_service.pki.keys import decrypt_private_key

    data_dir = tmp_path / "ca"
    files = init_ca(data_dir)
    keys = [files.path(name, "key.pem") for name in ("root", "issuing", "services", "grpc")]
    originals = {}
    for path in keys:
        key = decrypt_private_key(path.read_bytes(), PASSPHRASE.encode())
        originals[path] = key.private_numbers()
        path.write_bytes(  # what cryptography's BestAvailableEncryption writes
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(PASSPHRASE.encode()),
            )
        )
        assert pbes2_parameters(path.read_bytes())["iterations"] == 2048
    for directory in ("credentials", "credentials/operator", "credentials/gateway"):
        (data_dir / directory).chmod(0o755)

    env = ca_env(data_dir, CA_REDIS_URL=redis_server, CA_REDIS_PREFIX="upgrade:")
    server = CaProcess(data_dir, env, tmp_path / "ca.log").start()
    try:
        for path in [*keys, files.path("ocsp", "key.pem")]:
            assert pbes2_parameters(path.read_bytes())["iterations"] == 600_000, path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for path in keys:  # the same keys, under the new protection
            key = decrypt_private_key(path.read_bytes(), PASSPHRASE.encode())
            assert key.private_numbers() == originals[path]
        for directory in ("credentials", "credentials/operator", "credentials/gateway"):
            assert stat.S_IMODE((data_dir / directory).stat().st_mode) == 0o700
        log = (tmp_path / "ca.log").read_text()
        assert f"{files.path('issuing', 'key.pem')} encrypted again" in log
        assert f"{data_dir / 'credentials'} was readable by others; now 0700" in log
        assert _admin(server, "ca", "chain").stdout.count("BEGIN CERTIFICATE") == 2
    finally:
        server.stop()
    # A second start finds nothing to do.
    server = CaProcess(data_dir, env, tmp_path / "ca2.log").start()
    server.stop()
    assert "encrypted again" not in (tmp_path / "ca2.log").read_text()


def test_init_needs_a_passphrase_and_reads_it_from_a_file(tmp_path: Path) -> None:
    env = ca_env(tmp_path / "a")
    del env["CA_KEY_PASSPHRASE"]
    result = run([tool("ca-service"), "init"], env, check=False)
    assert result.returncode == 1
    assert "CA_KEY_PASSPHRASE_FILE" in result.stderr
    assert not (tmp_path / "a" / "root").exists()

    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    env["CA_KEY_PASSPHRASE_FILE"] = str(secret)
    run([tool("ca-service"), "init"], env)
    assert CaFiles(tmp_path / "a").load(PASSPHRASE.encode()).root is not None


def test_serve_with_wrong_passphrase_fails_with_one_clear_line(tmp_path: Path) -> None:
    init_ca(tmp_path / "ca")
    env = ca_env(tmp_path / "ca", CA_KEY_PASSPHRASE="wrong", CA_GRPC_ADDRESS="127.0.0.1:0")
    result = run([tool("ca-service"), "serve"], env, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"ca-service: error: {tmp_path / 'ca' / 'grpc' / 'key.pem'}: cannot decrypt the CA key: "
        "wrong passphrase or damaged file"
    )
    assert PASSPHRASE not in result.stderr + result.stdout


def test_rsa_3072_hierarchy_issues_valid_certificates(tmp_path: Path, redis_server: str) -> None:
    data_dir = tmp_path / "ca"
    files = init_ca(data_dir, CA_KEY_ALGORITHM="rsa-3072")
    issuing = x509.load_pem_x509_certificate(files.path("issuing", "ca.pem").read_bytes())
    public_key = issuing.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 3072
    pkilint_certificate(files.path("root", "ca.pem"))
    pkilint_certificate(files.path("issuing", "ca.pem"))
    env = ca_env(data_dir, CA_REDIS_URL=redis_server, CA_REDIS_PREFIX="rsa3072:")
    server = CaProcess(data_dir, env, tmp_path / "log").start()
    try:
        _admin(server, "org", "create", "--name", ORG, "--id", "RSA-ORG1")
        _admin(
            server,
            "user",
            "create",
            "--org",
            "RSA-ORG1",
            "--user",
            "rsa00001",
            "--email",
            "rsa@example.jp",
        )
        out = tmp_path / "leaf.pem"
        _admin(
            server,
            "cert",
            "sign",
            "--csr",
            str(_csr_file(tmp_path / "r.csr")),
            "--user",
            "rsa00001",
            "--org",
            ORG,
            "--out",
            str(out),
        )
        openssl_verify(files.path("root", "ca.pem"), files.path("issuing", "ca.pem"), out)
        pkilint_certificate(out)
    finally:
        server.stop()


def test_admin_commands_human_and_json(ca_server: CaProcess, tmp_path: Path) -> None:
    create_user(ca_server.address, ca_server.operator(), "cli00001", ORG)
    csr = _csr_file(tmp_path / "u.csr")
    out = tmp_path / "u.pem"
    human = _admin(
        ca_server,
        "cert",
        "sign",
        "--csr",
        str(csr),
        "--user",
        "cli00001",
        "--org",
        ORG,
        "--out",
        str(out),
    ).stdout
    assert "user:         cli00001" in human and f"organization: {ORG}" in human
    certificate = x509.load_pem_x509_certificate(out.read_bytes())
    serial = format(certificate.serial_number, "x")

    shown = json.loads(_admin(ca_server, "--json", "cert", "show", serial).stdout)
    assert shown["serial_number"] == serial and shown["status"] == "valid"
    assert shown["user_id"] == "cli00001" and shown["organization"] == ORG
    by_fingerprint = json.loads(
        _admin(ca_server, "--json", "cert", "show", shown["fingerprint_sha256"]).stdout
    )
    assert by_fingerprint["serial_number"] == serial

    password_file = tmp_path / "pw"
    password_file.write_text("S3cret-pass!\n")
    issue = [
        "--json",
        "cert",
        "issue",
        "--user",
        "cli00001",
        "--out-dir",
        str(tmp_path / "p12"),
        "--password-file",
        str(password_file),
    ]
    # cli00001 holds a valid certificate: the renewal window (SPEC C2) applies ...
    refused = _admin(ca_server, *issue, check=False)
    assert refused.returncode == 1 and refused.stderr.strip().endswith("(ALREADY_ISSUED)")
    assert "renewal opens on" in refused.stderr
    # ... until the operator overrides it, explicitly.
    issued = json.loads(_admin(ca_server, *issue, "--override-renewal-window").stdout)
    p12 = Path(issued["pkcs12_file"])
    assert p12.name.startswith("cli00001") and p12.suffix == ".p12"
    assert stat.S_IMODE(os.stat(p12).st_mode) == 0o600
    run(["openssl", "pkcs12", "-in", str(p12), "-passin", f"file:{password_file}", "-noout"])

    listed = json.loads(_admin(ca_server, "--json", "cert", "list", "--user", "cli00001").stdout)
    assert {c["serial_number"] for c in listed} == {serial, issued["serial_number"]}
    table = _admin(ca_server, "cert", "list", "--user", "cli00001").stdout
    assert serial in table and "valid" in table

    chain = _admin(ca_server, "ca", "chain", "--out", str(tmp_path / "chain.pem")).stdout
    assert chain.count("BEGIN CERTIFICATE") == 2
    assert len(x509.load_pem_x509_certificates((tmp_path / "chain.pem").read_bytes())) == 2


def test_admin_issues_only_for_accounts_in_their_own_organisation(
    ca_server: CaProcess, tmp_path: Path
) -> None:
    """Issue 9, item 9: `ca-admin cert sign|issue` for a user without an account, or with
    another organisation in --org, is refused in one line; the audit names the caller."""
    csr = str(_csr_file(tmp_path / "u.csr"))
    password_file = tmp_path / "pw"
    password_file.write_text("S3cret-pass!\n")
    no_account = _admin(ca_server, "cert", "sign", "--csr", csr, "--user", "ghost001", check=False)
    assert no_account.returncode == 1
    assert no_account.stderr.strip() == (
        "ca-admin: error: no user ghost001: certificates are issued only for existing accounts "
        "(USER_NOT_FOUND)"
    )
    organization_id = create_user(ca_server.address, ca_server.operator(), "sample02", ORG)
    for command in (
        ["cert", "sign", "--csr", csr],
        ["cert", "issue", "--out-dir", str(tmp_path), "--password-file", str(password_file)],
    ):
        evil = _admin(ca_server, *command, "--user", "sample02", "--org", "Evil Corp", check=False)
        assert evil.returncode == 1 and evil.stdout == ""
        assert evil.stderr.strip() == (
            f"ca-admin: error: user sample02 belongs to organisation {organization_id} ({ORG}), "
            "not 'Evil Corp'; the subject's organisation always comes from the account, so "
            "leave it out (ORGANIZATION_MISMATCH)"
        )
    signed = json.loads(
        _admin(ca_server, "--json", "cert", "sign", "--csr", csr, "--user", "sample02").stdout
    )
    assert signed["organization"] == ORG
    audit = json.loads(
        _admin(
            ca_server, "--json", "audit", "list", "--user", "sample02", "--action", "issue"
        ).stdout
    )
    (entry,) = audit
    details = json.loads(entry["details"])
    assert entry["actor"] == "operator:operator"
    assert details["caller_role"] == "operator" and details["caller_credential"] == "operator"
    assert details["renewal_window"] == "open" and details["serial"] == signed["serial_number"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["cert", "show", "0bad"],
            "ca-admin: error: no certificate with serial number 0bad (CERTIFICATE_NOT_FOUND)",
        ),
        (
            ["cert", "list", "--user", "bad"],
            "ca-admin: error: user ID must be 6-12 characters long (INVALID_USER_ID)",
        ),
        (
            ["cert", "sign", "--csr", "/nonexistent.csr", "--user", "abc12345", "--org", "x"],
            "ca-admin: error: cannot read /nonexistent.csr: No such file or directory",
        ),
    ],
)
def test_admin_errors_are_one_line_and_non_zero(
    ca_server: CaProcess, args: list[str], expected: str
) -> None:
    result = _admin(ca_server, *args, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == expected
    assert result.stdout == ""


def test_admin_reports_an_unreachable_ca(ca_dir: Path) -> None:
    env = ca_env(ca_dir, CA_GRPC_ADDRESS="127.0.0.1:1")
    result = run([tool("ca-admin"), "ca", "chain"], env, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("ca-admin: error: cannot reach the CA at 127.0.0.1:1")
    assert len(result.stderr.strip().splitlines()) == 1


def test_admin_issue_asks_for_the_password_on_the_terminal(
    ca_server: CaProcess, tmp_path: Path
) -> None:
    """Without --password-file, ca-admin prompts twice on the terminal (no echo)."""
    import fcntl
    import pty
    import select
    import subprocess
    import termios
    import time

    create_user(ca_server.address, ca_server.operator(), "tty00001", ORG)
    main_fd, child_fd = pty.openpty()
    env = ca_env(ca_server.data_dir, CA_GRPC_ADDRESS=ca_server.address)

    def controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [
            tool("ca-admin"),
            "cert",
            "issue",
            "--user",
            "tty00001",
            "--org",
            ORG,
            "--out-dir",
            str(tmp_path),
        ],
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        env=env,
        start_new_session=True,
        preexec_fn=controlling_terminal,
    )
    os.close(child_fd)
    transcript = b""

    def read_until(marker: bytes, timeout: float = 20) -> None:
        nonlocal transcript
        deadline = time.monotonic() + timeout
        while marker not in transcript and time.monotonic() < deadline:
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if ready:
                try:
                    transcript += os.read(main_fd, 4096)
                except OSError:
                    break
        assert marker in transcript, transcript

    read_until(b"PKCS#12 password: ")
    os.write(main_fd, b"Tty-Passw0rd\n")
    read_until(b"Repeat the password: ")
    os.write(main_fd, b"Tty-Passw0rd\n")
    read_until(b"pkcs12 file:")
    assert process.wait(20) == 0
    os.close(main_fd)
    assert b"Tty-Passw0rd" not in transcript  # not echoed
    (p12,) = tmp_path.glob("tty00001*.p12")
    run(["openssl", "pkcs12", "-in", str(p12), "-passin", "pass:Tty-Passw0rd", "-noout"])


def test_server_certificate_for_the_gateway(tmp_path: Path) -> None:
    data_dir = tmp_path / "ca"
    files = init_ca(data_dir)
    env = ca_env(data_dir)
    out = run(
        [
            tool("ca-service"),
            "server-cert",
            "--name",
            "gateway",
            "--dns",
            "gateway.example.jp",
            "--ip",
            "127.0.0.1",
        ],
        env,
    ).stdout
    assert out.strip() == f"issued a TLS server certificate in {files.path('tls', 'gateway')}"
    directory = files.path("tls", "gateway")
    chain = x509.load_pem_x509_certificates((directory / "cert.pem").read_bytes())
    leaf = chain[0]
    assert chain[1] == x509.load_pem_x509_certificate(files.path("issuing", "ca.pem").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gateway.example.jp"]
    assert stat.S_IMODE((directory / "key.pem").stat().st_mode) == 0o600
    leaf_path = tmp_path / "leaf.pem"
    leaf_path.write_bytes(leaf.public_bytes(Encoding.PEM))
    result = run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            str(files.path("root", "ca.pem")),
            "-untrusted",
            str(files.path("issuing", "ca.pem")),
            str(leaf_path),
        ]
    )
    assert result.stdout.strip().endswith(": OK")
    pkilint_certificate(leaf_path)
    trust = x509.load_pem_x509_certificates((directory / "client-trust.pem").read_bytes())
    assert len(trust) == 2
    again = run(
        [tool("ca-service"), "server-cert", "--name", "gateway", "--dns", "x.example.jp"],
        env,
        check=False,
    )
    assert again.returncode == 1 and "already exists" in again.stderr
