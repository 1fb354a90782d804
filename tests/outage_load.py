"""Load for the outage tests: callers in threads that keep using the CA's gRPC API, its OCSP
endpoint and the gateway, and record every answer with the time it was asked and answered;
watchers that record the CA's gRPC health and the gateway's ``/-/health``.

Each answer is classified: "ok" (the correct answer), "UNAVAILABLE/<reason>" (gRPC),
"tryLater" (OCSP), "503" (the gateway's Japanese page), or anything else, which the tests
forbid (INTERNAL, 500, a deadline, a wrong answer).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import Request, urlopen

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ca_service.api import pb
from ca_service.client import api_error, secure_channel, stub
from ca_service.pki import der
from tests.gateway.curl import CSRF
from tests.gateway.gateway_stack import GatewayStack
from tests.support import make_csr

__all__ = ["Answer", "Load", "by_kind", "gateway_login", "unexpected"]

_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Answer:
    kind: str
    asked: float  # time.monotonic()
    answered: float
    result: str


def _grpc_result(error: grpc.RpcError) -> str:
    problem = api_error(error)
    return f"{problem.code.name}/{problem.reason}"


class _Gateway:
    """An HTTPS client with the user's certificate and its own cookies (http.client: no
    process per request on a shared machine)."""

    def __init__(self, stack: GatewayStack, cert_dir: Path) -> None:
        self._port = stack.gateways[0].port
        self._context = ssl.create_default_context(cafile=str(stack.trust))
        self._context.load_cert_chain(cert_dir / "cert.pem", cert_dir / "key.pem")
        self.cookie = ""

    def request(
        self, method: str, path: str, body: str | None = None
    ) -> tuple[int, dict[str, str], str]:
        connection = http.client.HTTPSConnection(
            "localhost", self._port, context=self._context, timeout=_TIMEOUT
        )
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
            cookie = response.getheader("Set-Cookie")
            if cookie and "Max-Age=0" not in cookie:
                self.cookie = cookie.split(";", 1)[0]
            return response.status, {k.lower(): v for k, v in response.getheaders()}, text
        finally:
            connection.close()


FORM_EXPIRED = "403 (form expired)"


def _page(status: int, body: str) -> str:
    """503 only with the Japanese page (lang ja, a Japanese message); 403 told apart when it
    is the page of a form whose session is gone."""
    if status == 503:
        return "503" if 'lang="ja"' in body and "しばらくしてから" in body else "503 (no page)"
    if status == 403 and "画面の有効期限が切れました" in body:
        return FORM_EXPIRED
    return str(status)


def gateway_login(client: _Gateway, user_id: str, password: str) -> str:
    status, _, body = client.request("GET", "/login/password")
    if status != 200:
        return _page(status, body)
    match = CSRF.search(body)
    if match is None:
        return "no csrf"
    form = f"csrf={match.group(1)}&user_id={user_id}&password={password}"
    status, headers, body = client.request("POST", "/login/password", form.replace("!", "%21"))
    if status == 303 and headers.get("location") == "/":
        return "ok"
    return _page(status, body)


@dataclass
class Load:
    stack: GatewayStack
    user_id: str
    password: str
    cert_dir: Path
    # (user ID, password) of a user without a certificate: adds StartAuthentication
    # (enrollment step 1) to the calls.
    enrolling: tuple[str, str] | None = None
    answers: list[Answer] = field(default_factory=list)
    # (time, CA gRPC health status name) and (time, gateway /-/health status, body)
    ca_health: list[tuple[float, str]] = field(default_factory=list)
    gateway_health: list[tuple[float, int, dict[str, object]]] = field(default_factory=list)
    pause: float = 0.05
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- callers ------------------------------------------------------------------------

    def _callers(self) -> dict[str, tuple[Callable[[], str], float]]:
        ca = self.stack.ca
        gateway_api = stub(secure_channel(ca.servers[0].address, ca.gateway))
        operator_api = stub(secure_channel(ca.servers[0].address, ca.operator))
        certificate = x509.load_pem_x509_certificate((self.cert_dir / "cert.pem").read_bytes())
        issuer = x509.load_pem_x509_certificate((ca.data_dir / "issuing" / "ca.pem").read_bytes())
        access = certificate.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess
        ).value
        ocsp_path = next(
            str(d.access_location.value)
            for d in access
            if d.access_method == x509.AuthorityInformationAccessOID.OCSP
        ).split("/", 3)[3]
        ocsp_url = f"{ca.servers[0].http}/{ocsp_path}"
        echo = _Gateway(self.stack, self.cert_dir)
        assert gateway_login(echo, self.user_id, self.password) == "ok"

        def get_user() -> str:
            user = gateway_api.GetUser(
                pb.GetUserRequest(user_id=self.user_id, acting_user_id=self.user_id),
                timeout=_TIMEOUT,
            )
            return "ok" if user.user_id == self.user_id else "wrong user"

        def list_certificates() -> str:
            found = operator_api.ListCertificates(
                pb.ListCertificatesRequest(user_id=self.user_id), timeout=_TIMEOUT
            )
            serials = {c.serial_number for c in found.certificates}
            return "ok" if f"{certificate.serial_number:x}" in serials else "wrong list"

        def login() -> str:
            user = gateway_api.Login(
                pb.LoginRequest(user_id=self.user_id, password=self.password), timeout=_TIMEOUT
            )
            return "ok" if user.user_id == self.user_id else "wrong user"

        def sign_csr() -> str:
            try:
                signed = operator_api.SignCsr(
                    pb.SignCsrRequest(csr=make_csr(), user_id=self.user_id),
                    timeout=_TIMEOUT,
                )
            except grpc.RpcError as error:
                # A renewal window for operator issuance (issue 9, item 9) refuses a second
                # certificate: also a correct answer, and one that needs the store.
                result = _grpc_result(error)
                return "ok" if result == "FAILED_PRECONDITION/ALREADY_ISSUED" else result
            return "ok" if signed.certificate.der else "no certificate"

        def ocsp_uncached() -> str:
            # A nonce makes every request one the responder signs afresh from the store; an
            # unknown serial is never cached either.
            serial = (
                certificate.serial_number
                if os.urandom(1)[0] % 2
                else int.from_bytes(os.urandom(15), "big")
            )
            builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(*_cert_id(issuer, serial))
            builder = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
            request = builder.build().public_bytes(Encoding.DER)
            with urlopen(
                Request(
                    ocsp_url,
                    data=request,
                    headers={"Content-Type": "application/ocsp-request"},
                ),
                timeout=_TIMEOUT,
            ) as reply:
                if reply.status != 200:
                    return f"http {reply.status}"
                answer = ocsp.load_der_ocsp_response(reply.read())
            if answer.response_status == ocsp.OCSPResponseStatus.TRY_LATER:
                return "tryLater"
            if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                return f"ocsp {answer.response_status.name}"
            expected = (
                ocsp.OCSPCertStatus.GOOD
                if serial == certificate.serial_number
                else ocsp.OCSPCertStatus.UNKNOWN
            )
            return "ok" if answer.certificate_status == expected else "wrong status"

        def gateway_echo() -> str:
            status, headers, body = echo.request("GET", "/echo")
            if status == 303 and headers.get("location", "").startswith("/login/password"):
                # The session is gone (a Redis restarted without persistence): log in again.
                again = gateway_login(echo, self.user_id, self.password)
                if again != "ok":
                    return again
                status, headers, body = echo.request("GET", "/echo")
            if status == 200:
                seen = {(k.lower(), v) for k, v in json.loads(body)["headers"]}
                return "ok" if ("x-user-id", self.user_id) in seen else "no identity"
            return _page(status, body)

        def gateway_password_login() -> str:
            return gateway_login(_Gateway(self.stack, self.cert_dir), self.user_id, self.password)

        callers = {
            "GetUser": (get_user, self.pause),
            "ListCertificates": (list_certificates, self.pause),
            "Login": (login, 0.3),  # Argon2: a few per second is load enough here
            "SignCsr": (sign_csr, self.pause),
            "OCSP": (ocsp_uncached, self.pause),
            "gateway /echo": (gateway_echo, self.pause),
            "gateway login": (gateway_password_login, 0.3),
        }
        if self.enrolling is not None:
            enrolling_id, enrolling_password = self.enrolling

            def start_authentication() -> str:
                started = gateway_api.StartAuthentication(
                    pb.StartAuthenticationRequest(
                        user_id=enrolling_id, password=enrolling_password
                    ),
                    timeout=_TIMEOUT,
                )
                return "ok" if started.session_handle else "no session"

            callers["StartAuthentication"] = (start_authentication, 0.3)
        return callers

    def _run(self, kind: str, call: Callable[[], str], pause: float) -> None:
        while not self._stop.is_set():
            asked = time.monotonic()
            try:
                result = call()
            except grpc.RpcError as error:
                result = _grpc_result(error)
            except Exception as error:
                result = f"{type(error).__name__}: {error}"
            with self._lock:
                self.answers.append(Answer(kind, asked, time.monotonic(), result))
            self._stop.wait(pause)

    # -- watchers -----------------------------------------------------------------------

    def _watch_ca(self) -> None:
        ca = self.stack.ca
        with secure_channel(ca.servers[0].address, ca.gateway) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while not self._stop.is_set():
                try:
                    reply = health.Check(
                        health_pb2.HealthCheckRequest(service="ca.v1.CertificateAuthority"),
                        timeout=_TIMEOUT,
                    )
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                except grpc.RpcError as error:
                    status = error.code().name
                self.ca_health.append((time.monotonic(), status))
                self._stop.wait(0.1)

    def _watch_gateway(self) -> None:
        client = _Gateway(self.stack, self.cert_dir)
        while not self._stop.is_set():
            status, _, body = client.request("GET", "/-/health")
            self.gateway_health.append((time.monotonic(), status, json.loads(body)))
            self._stop.wait(0.1)

    # -- control ------------------------------------------------------------------------

    def start(self) -> Load:
        for kind, (call, pause) in self._callers().items():
            self._threads.append(
                threading.Thread(target=self._run, args=(kind, call, pause), name=kind)
            )
        self._threads.append(threading.Thread(target=self._watch_ca, name="ca health"))
        self._threads.append(threading.Thread(target=self._watch_gateway, name="gw health"))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def between(self, start: float, end: float) -> list[Answer]:
        """Answers to calls asked at or after ``start`` and answered before ``end``."""
        with self._lock:
            return [a for a in self.answers if a.asked >= start and a.answered <= end]

    def asked_after(self, start: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.asked >= start]

    # -- what every outage test asserts -------------------------------------------------

    def assert_unhealthy(self, went_at: float, back_at: float) -> list[dict[str, object]]:
        """While the dependency is away (``went_at`` to ``back_at``, after 1.5 s for the CA
        and 2 s for the gateway to notice): the CA's gRPC health NOT_SERVING, the gateway's
        /-/health 503 "unavailable" with the CA not serving. The gateway's health bodies, for
        what a test checks of the cause."""
        ca_health = [s for t, s in self.ca_health if went_at + 1.5 <= t <= back_at]
        assert ca_health and set(ca_health) == {"NOT_SERVING"}, ca_health
        gateway_health = [
            (status, body) for t, status, body in self.gateway_health if went_at + 2 <= t <= back_at
        ]
        assert gateway_health
        for status, body in gateway_health:
            assert status == 503 and body["status"] == "unavailable", body
            assert body["ca"]["serving"] is False, body  # type: ignore[index]
        return [body for _, body in gateway_health]

    def assert_recovered(self, back_at: float, within: float) -> tuple[float, float]:
        """Every call asked ``within`` seconds after ``back_at`` (kinds of them all) answered
        correctly, the CA's health SERVING and the gateway's 200 by then. (seconds until
        SERVING, seconds until the last kind's first correct answer)."""
        after = self.asked_after(back_at + within)
        assert after and all(a.result == "ok" for a in after), by_kind(after)
        assert set(by_kind(after)) == set(by_kind(self.answers))
        serving = [t for t, s in self.ca_health if t >= back_at and s == "SERVING"]
        assert serving and serving[0] - back_at <= within
        healthy = [t for t, status, _ in self.gateway_health if t >= back_at and status == 200]
        assert healthy and healthy[0] - back_at <= within
        first_ok: dict[str, float] = {}
        for answer in self.asked_after(back_at):
            if answer.result == "ok":
                first_ok.setdefault(answer.kind, answer.answered - back_at)
        return serving[0] - back_at, max(first_ok.values())


def by_kind(answers: list[Answer]) -> dict[str, Counter[str]]:
    """How often each result came, per kind of call."""
    table: dict[str, Counter[str]] = {}
    for answer in answers:
        table.setdefault(answer.kind, Counter())[answer.result] += 1
    return table


def unexpected(table: dict[str, Counter[str]], allowed: set[str]) -> dict[str, dict[str, int]]:
    """Per kind of call, the results of ``table`` (:func:`by_kind`) that are neither correct
    nor among the ``allowed`` failures (an outage's documented unavailability)."""
    return {
        kind: {r: n for r, n in results.items() if r != "ok" and r not in allowed}
        for kind, results in table.items()
    }


def _cert_id(issuer: x509.Certificate, serial: int) -> tuple[bytes, bytes, int, hashes.SHA1]:
    """(issuer name hash, issuer key hash, serial, SHA-1) for an OCSP CertID."""
    name_hash = hashes.Hash(hashes.SHA1())
    name_hash.update(issuer.subject.public_bytes())
    spki = issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    key_hash = hashes.Hash(hashes.SHA1())
    key_hash.update(der.spki_key_bits(spki))
    return name_hash.finalize(), key_hash.finalize(), serial, hashes.SHA1()
