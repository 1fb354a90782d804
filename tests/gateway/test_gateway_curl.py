"""The gateway from the outside, with curl and openssl s_client as clients (issue 5): login,
verification on every request (also on a resumed TLS session), refusals, identity headers,
streaming, 502/504, health and metrics, several workers."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ca_service.api import pb
from gateway.sessions import COOKIE_NAME
from tests.gateway.curl import Client, echoed_headers, logged_in_master
from tests.gateway.gateway_stack import CertifiedUser, GatewayStack, Process
from tests.support import PASSPHRASE, free_port, run, tool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def user(gateway_stack: GatewayStack, tmp_path_factory: pytest.TempPathFactory) -> CertifiedUser:
    return gateway_stack.certified_user("curl0001", tmp_path_factory.mktemp("curl0001"))


def test_without_a_certificate_protected_routes_lead_to_the_login_page(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    client = Client(gateway_stack, tmp_path)
    status, headers, _ = client("/echo")
    assert status == 303 and headers["location"] == "/login?next=/echo"
    status, headers, body = client("/login")
    assert status == 200
    for label in (
        "ログイン",
        "マスターユーザーの初期登録",
        "一般ユーザーの初期登録",
        "電子証明書発行",
    ):
        assert label in body
    assert "HttpOnly" in headers["set-cookie"] and "Secure" in headers["set-cookie"]
    assert "SameSite=Lax" in headers["set-cookie"]
    assert "script-src 'self'" in headers["content-security-policy"]
    # The enrollment pages work without a certificate (SPEC E1).
    assert client("/enroll/auth")[0] == 200
    assert client("/register/master")[0] == 200


def test_login_needs_certificate_and_password_then_identity_reaches_upstream(
    gateway_stack: GatewayStack, user: CertifiedUser, tmp_path: Path
) -> None:
    client = Client(gateway_stack, tmp_path, user.cert)
    status, headers, _ = client("/echo")
    assert status == 303 and headers["location"].startswith("/login/password")
    status, _, body = client.follow(client.login(user.user_id, "Wrong-Pass1!"), "/login/password")
    assert status == 200 and "ユーザーIDまたはパスワードが正しくありません" in body
    status, headers, _ = client.login(user.user_id, user.password)
    assert status == 303 and headers["location"] == "/"
    status, _, body = client(
        "/echo",
        "-H",
        "x-user-id: intruder",
        "-H",
        "X-Forwarded-Client-Cert: Hash=forged",
        "-H",
        "x-user-role: master",
        "-H",
        "X-Org-Id: OTHER",
        "-H",
        "X-Forwarded-For: 10.9.9.9",
    )
    assert status == 200, body
    received = echoed_headers(body)
    assert received["x-user-id"] == [user.user_id]
    assert not {"x_user_id", "forwarded", "x-real-ip"} & received.keys()
    assert received["x-user-role"] == ["master"]
    org_id = received["x-org-id"][0]
    assert org_id != "OTHER" and re.fullmatch(r"[A-Za-z0-9-]+", org_id)
    der = x509.load_pem_x509_certificate((user.cert / "cert.pem").read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    (xfcc,) = received["x-forwarded-client-cert"]
    assert f"Hash={hashlib.sha256(der).hexdigest()}" in xfcc
    assert f"CN={user.user_id}" in xfcc and "URI=" in xfcc
    assert received["x-forwarded-for"] == ["127.0.0.1"]
    assert received["x-forwarded-proto"] == ["https"]
    # The sample upstream greets by user ID and organisation.
    status, _, body = client("/")
    assert status == 200 and f"ようこそ、{user.user_id} さん" in body
    assert "curl0001 株式会社" in body
    # The access log: one JSON line per request with user ID and serial, never a secret.
    time.sleep(0.2)
    log = gateway_stack.gateways[0].log()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    echo = [e for e in entries if e["path"] == "/echo" and e["user_id"] == user.user_id]
    assert echo and echo[-1]["status"] == 200 and echo[-1]["tls"] in ("TLSv1.2", "TLSv1.3")
    assert echo[-1]["serial"] == format(x509.load_der_x509_certificate(der).serial_number, "x")
    assert user.password not in log and "Wrong-Pass1!" not in log
    assert "__Host-gw_session=" not in log
    # Logout ends the session: the next request goes back to the login page.
    status, headers, _ = client.post("/logout", csrf=client.csrf("/login"))
    assert status == 303
    assert client("/echo")[0] == 303


def test_forms_without_the_csrf_token_are_rejected(
    gateway_stack: GatewayStack, user: CertifiedUser, tmp_path: Path
) -> None:
    client = Client(gateway_stack, tmp_path, user.cert)
    client.csrf("/login/password")
    status, _, body = client.post(
        "/login/password",
        csrf="forged",
        user_id=user.user_id,
        password=user.password,
    )
    assert status == 403 and "画面の有効期限が切れました" in body


def test_the_password_must_belong_to_the_certificate_user(
    gateway_stack: GatewayStack, user: CertifiedUser, tmp_path: Path
) -> None:
    other, password, _ = gateway_stack.new_user("curl0002")
    client = Client(gateway_stack, tmp_path, user.cert)
    status, _, body = client.follow(client.login(other, password))
    assert status == 200 and "電子証明書と一致しません" in body
    assert client("/echo")[0] == 303


def _refused(result: tuple[int, dict[str, str], str]) -> bool:
    """Refused at the handshake (curl fails) or by the gateway (403)."""
    return result[0] < 0 or result[0] == 403


def _sign(
    stack: GatewayStack, tmp: Path, *, not_before: datetime, not_after: datetime, eku: object
) -> Path:
    issuing_dir = stack.ca.data_dir / "issuing"
    issuer = x509.load_pem_x509_certificate((issuing_dir / "ca.pem").read_bytes())
    issuer_key = serialization.load_pem_private_key(
        (issuing_dir / "key.pem").read_bytes(), PASSPHRASE.encode()
    )
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "curl0001 株式会社"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "curl0001"),
                ]
            )
        )
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)  # type: ignore[list-item]
    )
    certificate = builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tmp


def test_foreign_expired_and_non_client_certificates_are_refused(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-noenc",
            "-days",
            "30",
            "-subj",
            "/O=curl0001 株式会社/CN=curl0001",
            "-addext",
            "extendedKeyUsage=clientAuth",
            "-keyout",
            str(foreign / "key.pem"),
            "-out",
            str(foreign / "cert.pem"),
        ]
    )
    expired = _sign(
        gateway_stack,
        tmp_path / "expired",
        not_before=datetime(2024, 1, 1, tzinfo=UTC),
        not_after=datetime(2025, 1, 1, tzinfo=UTC),
        eku=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    server_only = _sign(
        gateway_stack,
        tmp_path / "server-only",
        not_before=datetime(2026, 1, 1, tzinfo=UTC),
        not_after=datetime(2027, 12, 1, tzinfo=UTC),
        eku=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    # The handshake takes any certificate (issue 11): the gateway's page says why it is refused.
    for certificate, reason in (
        (foreign, "この電子証明書は本サービスが発行したものではありません。"),
        (expired, "電子証明書の有効期限が切れています。"),
        (server_only, "この電子証明書はログインには使えません。"),
    ):
        status, _, body = Client(gateway_stack, tmp_path, certificate)("/echo")
        assert status == 403 and reason in body, (certificate.name, status, body)
        # ... and the login page does not take them for a user either.
        login = Client(gateway_stack, tmp_path, certificate)("/login/password")
        assert _refused(login), (certificate.name, login)


def _s_client(
    stack: GatewayStack,
    cert: Path,
    session: Path,
    request: str,
    reuse: bool,
    version: str = "-tls1_2",
) -> str:
    args = [
        "openssl",
        "s_client",
        "-connect",
        f"127.0.0.1:{stack.gateways[0].port}",
        "-servername",
        "localhost",
        "-CAfile",
        str(stack.trust),
        version,
        "-cert",
        str(cert / "cert.pem"),
        "-key",
        str(cert / "key.pem"),
        "-ign_eof",
    ]
    args += ["-sess_in" if reuse else "-sess_out", str(session)]
    result = subprocess.run(args, input=request, capture_output=True, text=True, timeout=20)
    return result.stdout


def test_revocation_takes_effect_within_a_second_also_on_a_resumed_tls_session(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    owner = gateway_stack.certified_user("curl0003", tmp_path / "cert")
    cert = owner.cert
    client = Client(gateway_stack, tmp_path, cert)
    client.login(owner.user_id, owner.password)
    request = (
        "GET /echo HTTP/1.1\r\nHost: localhost\r\n"
        f"Cookie: {COOKIE_NAME}={client.session_cookie()}\r\nConnection: close\r\n\r\n"
    )
    session = tmp_path / "tls-session.pem"
    first = _s_client(gateway_stack, cert, session, request, reuse=False)
    assert "HTTP/1.1 200 OK" in first and "New, TLSv1.2" in first
    assert "Reused, TLSv1.2" in _s_client(gateway_stack, cert, session, request, reuse=True)

    serial = format(
        x509.load_pem_x509_certificate((cert / "cert.pem").read_bytes()).serial_number, "x"
    )
    gateway_stack.operator_api().RevokeCertificate(  # type: ignore[attr-defined]
        pb.RevokeCertificateRequest(serial_number=serial, reason="key_compromise")
    )
    revoked_at = time.monotonic()
    while True:
        status = client("/echo")[0]
        if status == 403:
            break
        assert status == 200
        assert time.monotonic() - revoked_at < 1.0, "revocation not in effect after 1 s"
        time.sleep(0.05)
    resumed = _s_client(gateway_stack, cert, session, request, reuse=True)
    assert "Reused, TLSv1.2" in resumed  # the handshake was skipped ...
    assert "HTTP/1.1 403" in resumed and "HTTP/1.1 200" not in resumed  # ... the check was not


def test_a_resumed_tls13_session_keeps_its_client_certificate(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    """TLS 1.3 resumes by ticket: the gateway still knows (and checks) the certificate."""
    owner, client = logged_in_master(gateway_stack, "curl0005", tmp_path)
    request = (
        "GET /echo HTTP/1.1\r\nHost: localhost\r\n"
        f"Cookie: {COOKIE_NAME}={client.session_cookie()}\r\nConnection: close\r\n\r\n"
    )
    session = tmp_path / "tls13-session.pem"
    first = _s_client(gateway_stack, owner.cert, session, request, False, "-tls1_3")
    assert "HTTP/1.1 200 OK" in first and "New, TLSv1.3" in first, first
    resumed = _s_client(gateway_stack, owner.cert, session, request, True, "-tls1_3")
    assert "Reused, TLSv1.3" in resumed, resumed
    assert "HTTP/1.1 200 OK" in resumed
    assert echoed_headers(_body(resumed))["x-user-id"] == [owner.user_id]


def _body(s_client_output: str) -> str:
    """The JSON body of the answer in openssl s_client's output (more may follow it)."""
    start = s_client_output.index("{", s_client_output.index("HTTP/1.1 200 OK"))
    _, end = json.JSONDecoder().raw_decode(s_client_output, start)
    return s_client_output[start:end]


def test_bodies_stream_through_in_both_directions(
    gateway_stack: GatewayStack, user: CertifiedUser, tmp_path: Path
) -> None:
    client = Client(gateway_stack, tmp_path, user.cert)
    client.login(user.user_id, user.password)
    upload = tmp_path / "upload.bin"
    data = (b"0123456789abcdef" * 65536) * 10  # 10 MiB
    upload.write_bytes(data)
    gateway_pid = gateway_stack.gateways[0].process.pid  # type: ignore[union-attr]

    def peak_rss_kib() -> int:
        status = Path(f"/proc/{gateway_pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]

    before = peak_rss_kib()
    status, _, body = client(
        "/upload", "--data-binary", f"@{upload}", "-H", "Content-Type: application/octet-stream"
    )
    assert status == 200, body
    assert json.loads(body) == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    status, _, body = client(
        "/upload", "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{upload}"
    )
    assert status == 200 and json.loads(body)["bytes"] == len(data)
    download = tmp_path / "download.bin"
    status, _, _ = client(f"/big?bytes={len(data)}", "-o", str(download))
    assert status == 200 and download.stat().st_size == len(data)
    # Never held whole: the gateway's peak memory grew by far less than the 10 MiB bodies.
    assert peak_rss_kib() - before < 6 * 1024


def test_health_and_metrics(gateway_stack: GatewayStack, tmp_path: Path) -> None:
    client = Client(gateway_stack, tmp_path)
    status, _, body = client("/-/health")
    assert status == 200 and json.loads(body)["revocations"]["fresh"] is True
    status, headers, body = client("/-/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert "gateway_requests_total{" in body and "gateway_revocations_fresh{" in body


@pytest.fixture(scope="module")
def impatient_gateway(gateway_stack: GatewayStack) -> Process:
    """A second gateway, certificate-only, that waits 1 s for the upstream."""
    return gateway_stack.start_gateway(
        "impatient", GATEWAY_UPSTREAM_TIMEOUT="1", GATEWAY_REQUIRE_LOGIN="0"
    )


def test_slow_upstream_is_a_504_and_a_dead_one_a_502(
    gateway_stack: GatewayStack,
    impatient_gateway: Process,
    user: CertifiedUser,
    tmp_path: Path,
) -> None:
    client = Client(gateway_stack, tmp_path, user.cert)
    url = f"https://localhost:{impatient_gateway.port}"
    status, _, body = client("/slow?seconds=3", url=url)
    assert status == 504 and "応答がありません" in body
    assert client("/echo", url=url)[0] == 200  # certificate-only mode
    dead = gateway_stack.start_gateway(
        "dead-upstream", GATEWAY_UPSTREAM=f"http://127.0.0.1:{free_port()}"
    )
    status, _, body = client("/login", url=f"https://localhost:{dead.port}")
    assert status == 200  # the screens do not need the upstream
    dead_client = Client(gateway_stack, tmp_path, user.cert)
    dead_url = f"https://localhost:{dead.port}"
    dead_client.login(user.user_id, user.password, url=dead_url)
    status, _, body = dead_client("/echo", url=dead_url)
    assert status == 502 and "接続できません" in body


def test_a_proxied_answer_carries_one_date_the_gateways(
    gateway_stack: GatewayStack, impatient_gateway: Process, user: CertifiedUser
) -> None:
    """The upstream dates its answer and so does the gateway, which frames it anew: the
    client gets one Date field, the gateway's (as from nginx), not two."""
    certificate = user.cert
    result = subprocess.run(
        [
            *("curl", "-sS", "--cacert", str(gateway_stack.trust), "-D", "-", "-o", "/dev/null"),
            *("--cert", str(certificate / "cert.pem"), "--key", str(certificate / "key.pem")),
            f"https://localhost:{impatient_gateway.port}/echo",
        ],
        capture_output=True,
        check=True,
    )
    lines = result.stdout.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200")
    assert len([line for line in lines if line.lower().startswith("date:")]) == 1


def test_a_revocation_reaches_every_worker_process_within_a_second(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    port = free_port()
    workers = gateway_stack.start_gateway(
        "workers",
        GATEWAY_WORKERS="2",
        GATEWAY_LISTEN=f"127.0.0.1:{port}",
        GATEWAY_REQUIRE_LOGIN="0",
    )
    cert = gateway_stack.certified_user("curl0004", tmp_path / "cert").cert
    client = Client(gateway_stack, tmp_path, cert)
    url = f"https://localhost:{workers.port}"
    seen = set()
    for _ in range(20):
        seen.add(json.loads(client("/-/health", url=url)[2])["pid"])
    assert len(seen) == 2, "both worker processes answer"
    assert client("/echo", url=url)[0] == 200
    serial = format(
        x509.load_pem_x509_certificate((cert / "cert.pem").read_bytes()).serial_number, "x"
    )
    gateway_stack.operator_api().RevokeCertificate(  # type: ignore[attr-defined]
        pb.RevokeCertificateRequest(serial_number=serial)
    )
    time.sleep(1.0)
    # Each curl run is a new connection; the kernel spreads them over both workers.
    assert [client("/echo", url=url)[0] for _ in range(12)] == [403] * 12


def test_a_new_server_certificate_is_used_without_dropping_open_connections(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    import http.client
    import shutil
    import ssl

    context = ssl.create_default_context(cafile=str(gateway_stack.trust))
    port = gateway_stack.gateways[0].port

    def connect() -> http.client.HTTPSConnection:
        connection = http.client.HTTPSConnection("localhost", port, context=context)
        connection.request("GET", "/-/health")
        connection.getresponse().read()
        return connection

    def served(connection: http.client.HTTPSConnection) -> bytes:
        return connection.sock.getpeercert(binary_form=True)  # type: ignore[no-any-return, union-attr]

    kept = connect()
    before = served(kept)
    run(
        [
            tool("ca-service"),
            "server-cert",
            "--name",
            "gateway-next",
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
        ],
        gateway_stack.ca.env,
    )
    fresh = gateway_stack.ca.data_dir / "tls" / "gateway-next"
    # Key first would pair a new key with the old certificate for a moment: the gateway
    # keeps the last good pair until both files match.
    for name in ("cert.pem", "key.pem"):
        shutil.copyfile(fresh / name, gateway_stack.tls_dir / name)
    time.sleep(1.1)  # the files are looked at no more than once a second
    renewed = connect()
    assert served(renewed) != before
    assert served(renewed) == ssl.PEM_cert_to_DER_cert(
        (fresh / "cert.pem").read_text().split("-----END CERTIFICATE-----")[0]
        + "-----END CERTIFICATE-----\n"
    )
    kept.request("GET", "/-/health")  # the connection opened before the reload still works
    assert kept.getresponse().status == 200


def test_login_returns_to_the_page_asked_for_but_never_off_site(
    gateway_stack: GatewayStack, user: CertifiedUser, tmp_path: Path
) -> None:
    client = Client(gateway_stack, tmp_path, user.cert)
    status, headers, _ = client("/echo?x=1")
    assert status == 303 and headers["location"] == "/login/password?next=/echo%3Fx%3D1"
    status, _, body = client(headers["location"])
    assert 'name="next" value="/echo?x=1"' in body
    for target, expected in (("//evil.example/", "/"), ("/echo?x=1", "/echo?x=1")):
        status, headers, _ = client.login(user.user_id, user.password, next_path=target)
        assert status == 303 and headers["location"] == expected


def test_malformed_forms_get_a_clear_4xx(gateway_stack: GatewayStack, tmp_path: Path) -> None:
    client = Client(gateway_stack, tmp_path)
    token = client.csrf("/enroll/auth")
    too_many = "&".join(f"f{i}=x" for i in range(100))
    status, _, body = client("/enroll/auth", "--data", f"csrf={token}&{too_many}")
    assert status == 400 and "more than 64 fields" in body
    status, _, _ = client("/enroll/auth", "-H", "Content-Type: text/plain", "--data", "x")
    assert status == 415
    status, _, _ = client("/enroll/auth?" + "&".join(f"q{i}=1" for i in range(40)))
    assert status == 400
