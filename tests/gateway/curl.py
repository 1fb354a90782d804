"""curl as the browser of the gateway tests: one cookie jar (one browser, as it were),
optionally a client certificate and a loopback source address (one client address); the
CSRF token of a page; the forms (login, ユーザー認証) and the page their redirect leads to;
what the sample upstream echoes."""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

from gateway.sessions import COOKIE_NAME
from tests.gateway.gateway_stack import CertifiedUser, GatewayStack
from tests.smtp_sink import SmtpSink

__all__ = [
    "CSRF",
    "Answer",
    "Client",
    "csrf_token",
    "echoed_headers",
    "logged_in_master",
    "shown_password",
]

# (status, headers with lower-case names, body); a negative status is curl's exit code.
Answer = tuple[int, dict[str, str], str]

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_token(body: str) -> str:
    """The CSRF token of a page with a form."""
    match = CSRF.search(body)
    assert match, body
    return match.group(1)


def shown_password(body: str, element: str = "created-password") -> str:
    """The password a page shows once in #``element`` (a new user's, a reset one)."""
    found = re.search(rf'id="{element}"[^>]*>([^<]+)<', body)
    assert found, body
    return html.unescape(found.group(1).strip())  # symbols arrive escaped


def logged_in_master(stack: GatewayStack, user_id: str, tmp: Path) -> tuple[CertifiedUser, Client]:
    """A new master user with its certificate (in ``tmp/<user_id>``) and a client that
    presents it, logged in."""
    master = stack.certified_user(user_id, tmp / user_id)
    client = Client(stack, tmp, master.cert)
    client.login(master.user_id, master.password)
    return master, client


def echoed_headers(body: str) -> dict[str, list[str]]:
    """The sample upstream's echo: header name (lower-case) → the values it got, in order."""
    received: dict[str, list[str]] = {}
    for name, value in json.loads(body)["headers"]:
        received.setdefault(name.lower(), []).append(value)
    return received


class Client:
    def __init__(
        self,
        stack: GatewayStack,
        tmp: Path,
        cert: Path | None = None,
        *,
        source: str | None = None,
    ) -> None:
        self.stack = stack
        self.jar = tmp / f"jar-{id(self)}.txt"
        self.cert = cert
        self.source = source

    def __call__(self, path: str, *extra: str, url: str | None = None) -> Answer:
        args = ["curl", "-sS", "--cacert", str(self.stack.trust), "-b", str(self.jar)]
        args += ["-c", str(self.jar), "-D", "-", "--max-time", "20"]
        if self.cert is not None:
            args += ["--cert", str(self.cert / "cert.pem"), "--key", str(self.cert / "key.pem")]
        if self.source is not None:
            args += ["--interface", self.source]
        result = subprocess.run(
            [*args, *extra, (url or self.stack.url) + path], capture_output=True
        )
        if result.returncode != 0:
            return -result.returncode, {}, result.stderr.decode(errors="replace")
        # Bytes, not text mode: universal newlines would turn the CRLFs into LFs.
        head, _, body = result.stdout.decode(errors="replace").partition("\r\n\r\n")
        while head.startswith("HTTP/1.1 100"):
            head, _, body = body.partition("\r\n\r\n")
        lines = head.split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers, body

    def session_cookie(self) -> str:
        """The value of the gateway's session cookie in the jar."""
        return next(
            line.split("\t")[-1].strip()
            for line in self.jar.read_text().splitlines()
            if COOKIE_NAME in line
        )

    def csrf(self, path: str, url: str | None = None) -> str:
        status, _, body = self(path, url=url)
        assert status == 200, body
        return csrf_token(body)

    def post(self, path: str, url: str | None = None, **fields: str) -> Answer:
        """A form, URL-encoded; give the CSRF token as the field ``csrf``."""
        args = [
            part
            for name, value in fields.items()
            for part in ("--data-urlencode", f"{name}={value}")
        ]
        return self(path, *args, url=url)

    def follow(self, answer: Answer, location: str | None = None) -> Answer:
        """The page a form's answer redirects to (POST/redirect/GET); ``location``, when
        given, is the one it must name."""
        status, headers, body = answer
        assert status == 303, (status, body)
        if location is not None:
            assert headers["location"] == location, headers
        return self(headers["location"])

    def login(
        self, user_id: str, password: str, *, url: str | None = None, next_path: str = ""
    ) -> Answer:
        """ログイン with the client's certificate."""
        fields = {
            "csrf": self.csrf("/login/password", url),
            "user_id": user_id,
            "password": password,
        }
        if next_path:
            fields["next"] = next_path
        return self.post("/login/password", url, **fields)

    def create_general_user(self, user_id: str) -> str:
        """As the master user logged in on this client: registers ``user_id`` (mail
        ``<user_id>@example.jp``) on the master user's page; the password shown once."""
        body = self("/master/users")[2]
        created = self.post(
            "/master/users/new",
            csrf=csrf_token(body),
            user_id=user_id,
            email=f"{user_id}@example.jp",
        )
        status, _, body = self.follow(created, "/master/users/created")
        assert status == 200 and f'id="created-user-id">{user_id}<' in body, body
        return shown_password(body)

    def authenticate(self, smtp: SmtpSink, user_id: str, password: str, email: str) -> Answer:
        """ユーザー認証; when it is accepted (a redirect to 認証コード入力, where a refusal
        leads back to ユーザー認証), waits for the code mail it sends."""
        before = len(smtp.code_mails(email))
        token = csrf_token(self("/enroll/auth")[2])
        answer = self.post("/enroll/auth", csrf=token, user_id=user_id, password=password)
        if answer[0] == 303 and answer[1]["location"] == "/enroll/code":
            smtp.wait_for_code(email, before)
        return answer
