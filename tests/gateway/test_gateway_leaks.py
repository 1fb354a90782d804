"""What the gateway must not leak or trip over (issue 9, item 8), through a running gateway and
the sample upstream, which echoes the headers it received: the gateway's own session cookie
never reaches the upstream (whatever the other cookies and however many Cookie headers), a
CSRF token that is not ASCII is a 403, an absurdly long static file name a 404, and Host
survives a Connection header that names it."""

from __future__ import annotations

import http.client
import socket
import ssl
from pathlib import Path

import pytest

from gateway.sessions import COOKIE_NAME
from tests.gateway.curl import Client, echoed_headers
from tests.gateway.gateway_stack import GatewayStack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logged_in(
    gateway_stack: GatewayStack, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Client, str]:
    """A client with a certificate and a password login; (client, session cookie value)."""
    tmp = tmp_path_factory.mktemp("leak0001")
    user = gateway_stack.certified_user("leak0001", tmp)
    client = Client(gateway_stack, tmp, user.cert)
    status, _, _ = client.login(user.user_id, user.password)
    assert status == 303
    return client, client.session_cookie()


def _raw(stack: GatewayStack, certificate: Path, head: str) -> tuple[int, str]:
    """Sends ``head`` (a request without a body) as it is; (status, body) of the answer."""
    context = ssl.create_default_context(cafile=str(stack.trust))
    context.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    with (
        socket.create_connection(("127.0.0.1", stack.gateways[0].port), timeout=20) as plain,
        context.wrap_socket(plain, server_hostname="localhost") as tls,
    ):
        tls.sendall(head.encode("latin-1"))
        # http.client only reads the answer (its framing), whatever the request said.
        answer = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
        answer.begin()
        return answer.status, answer.read().decode("utf-8", "replace")


def _request(*headers: str) -> str:
    return "GET /echo HTTP/1.1\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"


def test_the_session_cookie_never_reaches_the_upstream(
    gateway_stack: GatewayStack, logged_in: tuple[Client, str]
) -> None:
    client, session = logged_in
    certificate = client.cert
    assert certificate is not None
    cases = [
        # (Cookie headers the browser sends, Cookie headers the upstream must get)
        ([f"theme=dark; {COOKIE_NAME}={session}; portal=a1"], ["theme=dark; portal=a1"]),
        ([f"{COOKIE_NAME}={session}", "portal=a1; lang=ja"], ["portal=a1; lang=ja"]),
        ([f"portal=a1;{COOKIE_NAME}={session};lang=ja", "x=1"], ["portal=a1; lang=ja", "x=1"]),
        ([f"{COOKIE_NAME}={session}"], []),
        ([f" {COOKIE_NAME} = {session} ; portal=a1"], ["portal=a1"]),
    ]
    for sent, expected in cases:
        headers = ["Host: localhost", *(f"Cookie: {value}" for value in sent)]
        status, body = _raw(gateway_stack, certificate, _request(*headers, "Connection: close"))
        assert status == 200, (sent, body)  # the gateway itself still read the session
        assert echoed_headers(body).get("cookie", []) == expected, sent
        assert session not in body
    # The same through curl, which sends the cookie jar and one more cookie.
    status, _, body = client("/echo", "-b", "portal=curl")
    assert status == 200
    assert session not in body and echoed_headers(body)["cookie"] == ["portal=curl"]


def test_a_csrf_token_that_is_not_ascii_is_a_403(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    client = Client(gateway_stack, tmp_path)
    client.csrf("/enroll/auth")  # a session with a token exists
    for token in ("トークン", "é" * 43, "\u3000"):
        status, _, body = client(
            "/enroll/auth",
            "--data-urlencode",
            f"csrf={token}",
            "--data-urlencode",
            "user_id=abc12345",
            "--data-urlencode",
            "password=Passw0rd!",
        )
        assert status == 403 and "画面の有効期限が切れました" in body, (token, body)
    assert "request handler failed" not in gateway_stack.gateways[0].log()


def test_a_static_file_name_too_long_for_the_file_system_is_a_404(
    gateway_stack: GatewayStack, tmp_path: Path
) -> None:
    client = Client(gateway_stack, tmp_path)
    for name in ("a" * 256, "b" * 300 + ".css", "%2e%2e%2f" * 40, "style.css/" + "c" * 300):
        status, _, body = client("/-/static/" + name)
        assert status == 404 and "ページが見つかりません" in body, name
    status, headers, body = client("/-/static/style.css")
    assert status == 200 and headers["content-type"] == "text/css; charset=utf-8" and body
    assert "request handler failed" not in gateway_stack.gateways[0].log()


def test_host_reaches_the_upstream_even_when_connection_names_it(
    gateway_stack: GatewayStack, logged_in: tuple[Client, str]
) -> None:
    client, session = logged_in
    assert client.cert is not None
    for connection in ("Host", "keep-alive, host", "HOST, X-Drop-Me, close"):
        status, body = _raw(
            gateway_stack,
            client.cert,
            _request(
                "Host: portal.example.jp",
                f"Cookie: {COOKIE_NAME}={session}",
                "X-Drop-Me: 1",
                f"Connection: {connection}",
            ),
        )
        assert status == 200, body
        received = echoed_headers(body)
        assert received["host"] == ["portal.example.jp"], connection
        assert received["x-forwarded-host"] == ["portal.example.jp"]
        # Whatever else Connection names is still not forwarded.
        assert ("x-drop-me" in received) == ("x-drop-me" not in connection.lower())
