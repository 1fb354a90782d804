"""The procedure portal through the real gateway and CA, with curl as the browser (SPEC D1–D3,
seed 004): registration with the address twice and consent, the link from the mail (once,
not after it expired), the card's attributes, files attached in rounds and removed, the
limits (count, 10 MB, refused before the body is read), strict receipt numbers, confirm,
one submission however often it is sent, the completion page and mail; sessions bound to
the address and the card; CSRF on every form."""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.portal.procedure import MAX_FILES, MAX_TOTAL_BYTES
from tests.gateway.curl import Client, csrf_token
from tests.portal.portal_stack import MOUNT, PortalStack

pytestmark = pytest.mark.slow

RECEIPT = "S0101-20230101102030-12345"
CARD = MOUNT + "card/"


def _register(client: Client, address: str, again: str | None = None, consent: bool = True):  # type: ignore[no-untyped-def]
    token = client.csrf(MOUNT)
    fields = {"csrf": token, "address": address, "address_again": again or address}
    if consent:
        fields["consent"] = "1"
    return client.post(MOUNT + "register", **fields)


def _open_link(client: Client, link: str):  # type: ignore[no-untyped-def]
    target = link.split("localhost:", 1)[1].split("/", 1)[1]
    answer = client("/" + target)
    if answer[0] != 200:
        return answer  # the link's page says at once that it is no good
    page = answer[2]
    assert "マイナンバーカード読み取り" in page
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token
    return client.post(MOUNT + "verify", csrf=csrf_token(page), token=token.group(1))


def _verified(stack: PortalStack, tmp: Path, address: str, card: Path) -> Client:
    """A client with a card whose address was registered and verified."""
    client = Client(stack.gateway, tmp, cert=card)
    assert _register(client, address)[0] == 200
    status, headers, _ = _open_link(client, stack.wait_for_link(address))
    assert status == 303 and headers["location"] == CARD
    return client


def _upload(
    client: Client, files: list[Path], action: str = "upload", **fields: str
) -> tuple[int, dict[str, str], str]:
    _, _, page = client(CARD + "resubmit")
    args = ["-F", f"csrf={csrf_token(page)}", "-F", f"action={action}"]
    for name, value in fields.items():
        args += ["-F", f"{name}={value}"]
    for path in files:
        args += ["-F", f"files=@{path};type=image/png"]
    return client(CARD + "resubmit", *args)


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file(tmp: Path, name: str, size: int) -> Path:
    path = tmp / name
    path.write_bytes(hashlib.sha256(name.encode()).digest() * (size // 32) + b"x" * (size % 32))
    return path


def test_register_verify_confirm_upload_in_rounds_submit_once(
    stack: PortalStack, tmp_path: Path
) -> None:
    address = "taro_kyosai@test.example.jp"
    card = stack.card("taro")
    client = Client(stack.gateway, tmp_path, cert=card)
    status, _, page = client(MOUNT)
    assert status == 200 and "メールアドレス登録" in page and "同意します" in page
    # The address twice, alike, and consent.
    assert "一致しません" in _register(client, address, again="other@test.example.jp")[2]
    assert "同意してください" in _register(client, address, consent=False)[2]
    status, _, page = _register(client, address)
    assert status == 200 and "利用申込用のURLをお送りしました" in page and "24時間" in page
    status, headers, _ = _open_link(client, stack.wait_for_link(address))
    assert status == 303 and headers["location"] == CARD
    cookie = next(
        line for line in client.jar.read_text().splitlines() if "__Secure-portal-session" in line
    )
    assert cookie.startswith("#HttpOnly_")  # curl's mark of HttpOnly
    _, _, path, secure, *_ = cookie.split("\t")
    assert (path, secure) == (MOUNT, "TRUE")  # never sent to the gateway's other upstreams

    status, _, page = client(CARD)
    assert status == 200 and "契約者基本情報確認" in page
    for shown in ("共済 太郎", "東京都港区虎ノ門3-5-1", "1990年04月01日", "男性"):
        assert shown in page
    status, headers, _ = client.post(CARD + "identity", csrf=csrf_token(page))
    assert status == 303 and headers["location"] == CARD + "resubmit"

    # Two rounds of files, one removed, all others kept.
    one, two, three = (_file(tmp_path, f"{n}.png", 200_000 + n) for n in (1, 2, 3))
    assert _upload(client, [one, two], member_number="123456789")[0] == 303
    assert _upload(client, [three], receipt_number=RECEIPT, member_number="123456789")[0] == 303
    status, _, page = client(CARD + "resubmit")
    assert page.count('class="attached-file"') == 3
    assert 'value="123456789"' in page and f'value="{RECEIPT}"' in page
    remove = re.findall(r'name="action" value="(remove:\d+)"', page)
    assert len(remove) == 3
    assert (
        _upload(client, [], action=remove[1], receipt_number=RECEIPT, member_number="123456789")[0]
        == 303
    )
    status, headers, page = _upload(
        client, [], action="confirm", receipt_number=RECEIPT, member_number="123456789"
    )
    assert status == 303 and headers["location"] == CARD + "confirm", page

    status, _, page = client(CARD + "confirm")
    assert status == 200 and "添付資料再提出確認" in page
    assert "1.png" in page and "3.png" in page and "2.png" not in page
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token
    submit = {"csrf": csrf_token(page), "token": token.group(1)}
    first = client.post(CARD + "submit", **submit)
    again = client.post(CARD + "submit", **submit)  # a double click, a reload
    assert first[0] == again[0] == 303
    assert first[1]["location"] == again[1]["location"]
    status, _, page = client(first[1]["location"])
    assert (
        status == 200
        and "添付資料再提出完了" in page
        and "再提出いただき、ありがとうございました。" in page
    )
    receipt = re.search(r'id="receipt-number">(S0101-\d{14}-\d{5})<', page)
    assert receipt
    mail = stack.wait_for_completion(address)
    assert receipt.group(1) in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    rows = stack.portal_rows(
        "SELECT receipt_number, member_number, original_receipt, card_name FROM portal_submissions"
        " WHERE address = ?",
        address,
    )
    assert rows == [(receipt.group(1), "123456789", RECEIPT, "共済 太郎")]
    files = stack.portal_rows(
        "SELECT name, size, sha256, path FROM portal_submission_files WHERE receipt_number = ?"
        " ORDER BY ordinal",
        receipt.group(1),
    )
    assert [(f[0], f[1]) for f in files] == [("1.png", 200_001), ("3.png", 200_003)]
    for (_, _, digest, path), source in zip(files, (one, three), strict=True):
        assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
        assert Path(str(path)).read_bytes() == source.read_bytes()
    # The removed file is gone from the disk, too.
    assert len(list(stack.storage.iterdir())) == len(
        stack.portal_rows("SELECT path FROM portal_submission_files")
    )


def test_a_link_works_once_and_not_after_it_expired(stack: PortalStack, tmp_path: Path) -> None:
    address = "hanako@test.example.jp"
    client = Client(stack.gateway, tmp_path, cert=stack.card("hanako"))
    _register(client, address)
    link = stack.wait_for_link(address)
    target = "/" + link.split("localhost:", 1)[1].split("/", 1)[1]
    # Fetching the link (a mail scanner, a preview) shows its page and uses nothing.
    assert client(target)[0] == client(target)[0] == 200
    assert _open_link(client, link)[0] == 303
    status, _, page = _open_link(Client(stack.gateway, _dir(tmp_path / "b")), link)
    assert status == 410 and "既に使用されています" in page and "登録し直す" in page
    # A link used between its page and the button: the button says so.
    _register(client, address)
    link = stack.wait_for_link(address, count=2)
    target = "/" + link.split("localhost:", 1)[1].split("/", 1)[1]
    page = client(target)[2]
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token and _open_link(Client(stack.gateway, _dir(tmp_path / "c")), link)[0] == 303
    status, _, page = client.post(MOUNT + "verify", csrf=csrf_token(page), token=token.group(1))
    assert status == 410 and "既に使用されています" in page

    _register(client, address)
    link = stack.wait_for_link(address, count=3)
    assert stack.expire_links(address) == 1
    status, _, page = _open_link(client, link)
    assert status == 410 and "有効期限が切れています" in page and "24時間" in page

    for target in ("verify?token=not-a-token", "verify"):
        status, _, page = client(MOUNT + target)
        assert status == 404 and "URLが正しくありません" in page


def test_limits_and_receipt_numbers(stack: PortalStack, tmp_path: Path) -> None:
    client = _verified(stack, tmp_path, "limits@test.example.jp", stack.card("limits"))
    _, _, page = client(CARD)
    client.post(CARD + "identity", csrf=csrf_token(page))
    six = [_file(tmp_path, f"six-{i}.png", 1000) for i in range(MAX_FILES + 1)]
    status, _, page = _upload(client, six)
    assert status == 413 and "5つまで、かつ合計10MBまで" in page
    assert 'class="attached-file"' not in page

    big = _file(tmp_path, "big.png", MAX_TOTAL_BYTES + 1)
    status, _, page = _upload(client, [big])
    assert status == 413 and "10MB" in page
    exact = _file(tmp_path, "exact.png", MAX_TOTAL_BYTES)
    assert _upload(client, [exact])[0] == 303
    one_more = _file(tmp_path, "one.png", 1)
    status, _, page = _upload(client, [one_more])
    assert status == 413 and page.count('class="attached-file"') == 1
    assert len(list(stack.storage.glob("*"))) >= 1

    for bad in (
        "S0101-20230230102030-12345",
        "S0101-2023010110203-12345",
        "S0101-20230101102030-1234５",
    ):
        status, _, page = _upload(client, [], action="confirm", receipt_number=bad)
        assert status == 400 and 'id="error-receipt_number"' in page, bad
    status, _, page = _upload(
        client, [], action="confirm", receipt_number=RECEIPT, member_number="12345678"
    )
    assert status == 400 and "9桁" in page
    status, headers, _ = _upload(client, [], action="confirm", receipt_number=RECEIPT)
    assert status == 303 and headers["location"] == CARD + "confirm"  # an applicant: no number


def test_sessions_are_bound_and_forms_need_their_token(stack: PortalStack, tmp_path: Path) -> None:
    client = _verified(stack, tmp_path, "bound@test.example.jp", stack.card("bound"))
    status, _, page = client(CARD)
    assert status == 200
    # Another card with this session's cookie: refused.
    other = Client(stack.gateway, tmp_path, cert=stack.card("other"))
    other.jar = client.jar
    status, _, page = other(CARD)
    assert status == 403 and "異なるマイナンバーカード" in page
    # No session: the registration first.
    status, _, page = Client(stack.gateway, _dir(tmp_path / "new"), cert=stack.card("new"))(CARD)
    assert status == 401 and "メールアドレスの登録からやり直して" in page
    # No card: the gateway refuses the card routes; the public pages need none.
    status, _, _ = Client(stack.gateway, _dir(tmp_path / "none"))(CARD)
    assert status in (401, 403)
    anonymous = Client(stack.gateway, _dir(tmp_path / "none2"))
    assert anonymous(MOUNT)[0] == 200
    status, headers, script = anonymous(MOUNT + "static/portal.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert "data-needs-consent" in script or "needsConsent" in script
    assert anonymous(MOUNT + "no-such-page")[0] == 404
    assert anonymous(MOUNT + "register")[0] == 405  # a form's address, fetched
    # Forms without their token.
    assert client.post(CARD + "identity", csrf="forged")[0] == 403
    assert client.post(MOUNT + "register", csrf="x" * 43, address="a@b.jp")[0] == 403
    # Card headers sent by the client are not believed.
    status, _, page = Client(stack.gateway, _dir(tmp_path / "spoof"))(
        CARD, "-H", "X-Card-Fingerprint: " + "ab" * 32, "-H", "X-Card-Name: spoof"
    )
    assert status in (401, 403) and "spoof" not in page


def test_a_revoked_card_is_refused_in_japanese(stack: PortalStack, tmp_path: Path) -> None:
    from ca_service.devtools.card_ca import revoke

    card = stack.card("revoked")
    client = _verified(stack, tmp_path, "revoked@test.example.jp", card)
    assert client(CARD)[0] == 200
    revoke(stack.card_ca, (card / "cert.pem").read_bytes())
    page = stack.wait_until_refused(card)
    assert "失効" in page
    # The same session with the card revoked: refused by the gateway, never at the portal.
    assert client(CARD)[0] == 403


def _session_of(client: Client) -> str:
    return next(
        line.split("\t")[-1].strip()
        for line in client.jar.read_text().splitlines()
        if "__Secure-portal-session" in line
    )


def test_an_upload_declared_too_large_is_refused_before_its_body(
    stack: PortalStack, tmp_path: Path
) -> None:
    """At the portal itself (as the gateway would call it, card headers and all): a body
    whose Content-Length passes what is left of 10 MB is answered 413 at once, naming the
    limit, while not one byte of it was sent."""
    card = stack.card("declared")
    client = _verified(stack, tmp_path, "declared@test.example.jp", card)
    _, _, page = client(CARD)
    client.post(CARD + "identity", csrf=csrf_token(page))
    fingerprint = hashlib.sha256(
        x509.load_pem_x509_certificate((card / "cert.pem").read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
    ).hexdigest()
    head = (
        f"POST {CARD}resubmit HTTP/1.1\r\nHost: portal\r\n"
        f"Cookie: __Secure-portal-session={_session_of(client)}\r\n"
        f"X-Card-Fingerprint: {fingerprint}\r\nX-Card-Name: x\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {MAX_TOTAL_BYTES * 3}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", stack.portal.port), timeout=10) as connection:
        connection.sendall(head.encode())
        answer = b""
        while b"</html>" not in answer:
            piece = connection.recv(65536)
            if not piece:
                break
            answer += piece
    text = answer.decode()
    assert text.startswith("HTTP/1.1 413"), text[:200]
    assert "5つまで、かつ合計10MBまで" in text
    # Through the gateway, streaming: the same page, and nothing kept.
    huge = _file(tmp_path, "huge.png", MAX_TOTAL_BYTES * 3)
    stored = sorted(stack.storage.iterdir())
    status, _, page = _upload(client, [huge])
    assert status == 413 and "10MB" in page
    assert sorted(stack.storage.iterdir()) == stored  # the partial file is gone


@dataclass(frozen=True)
class _Sent:
    status: int
    page: str
    uploaded: int  # bytes of the body curl sent before it stopped
    seconds: float  # from the start to the end of the answer


def _send(client: Client, path: str, body: Path, *args: str) -> _Sent:
    """One upload with curl as the browser would send it (no ``Expect: 100-continue``, so
    the first answer is the final one), timed by curl itself."""
    page = body.with_suffix(".answer")
    command = ["curl", "-sS", "--cacert", str(client.stack.trust), "-b", str(client.jar)]
    if client.cert is not None:
        command += ["--cert", str(client.cert / "cert.pem"), "--key", str(client.cert / "key.pem")]
    command += ["-H", "Expect:", "--max-time", "60", "-o", str(page)]
    command += ["-w", "%{http_code} %{size_upload} %{time_total}", *args, path]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    status, uploaded, seconds = result.stdout.split()
    return _Sent(int(status), page.read_text(errors="replace"), int(uploaded), float(seconds))


def _sparse(tmp: Path, name: str, size: int) -> Path:
    path = tmp / name
    with path.open("wb") as file:
        file.truncate(size)
    return path


@pytest.mark.serial
def test_an_upload_of_any_size_over_the_limit_is_refused_before_it_is_sent(
    stack: PortalStack, tmp_path: Path
) -> None:
    """30 MB and 200 MB through the gateway, as one body (``--data-binary``) and as a form
    (``-F``, its length declared or chunked): the 413 page naming the limit comes while
    curl is still sending, and curl stops. Sent at a fixed rate, so that the time the whole
    body takes is known (measured: the same body to the sample upstream, which reads it
    all): a length declared over the limit is refused on the head, a chunked one once the
    portal has read what the limit allows — either way long before the whole body."""
    client = _verified(stack, tmp_path, "sizes@test.example.jp", stack.card("sizes"))
    _, _, page = client(CARD)
    client.post(CARD + "identity", csrf=csrf_token(page))
    upstream = f"http://127.0.0.1:{stack.gateway.upstream.port}/upload"
    rate = ["--limit-rate", "40M"]  # 40 MiB/s: the whole of 200 MB takes 5 s
    stored = sorted(stack.storage.iterdir())
    for size in (30 * 1024 * 1024, 200 * 1024 * 1024):
        big = _sparse(tmp_path, f"big-{size}.png", size)
        whole = _send(client, upstream, big, *rate, "--data-binary", f"@{big}")
        assert whole.status == 200 and whole.uploaded == size
        token = csrf_token(client(CARD + "resubmit")[2])
        form = ["-F", f"csrf={token}", "-F", "action=upload", "-F", f"files=@{big};type=image/png"]
        url = client.stack.url + CARD + "resubmit"
        for shape, args in (
            (
                "binary",
                ["-H", "Content-Type: multipart/form-data; boundary=b", "--data-binary", f"@{big}"],
            ),
            ("form", form),
            ("chunked form", ["-H", "Transfer-Encoding: chunked", *form]),
        ):
            refused = _send(client, url, big, *rate, *args)
            print(
                f"{size // (1024 * 1024)} MB {shape}: 413 after {refused.seconds:.3f} s,"
                f" {refused.uploaded / (1024 * 1024):.1f} MB sent;"
                f" the whole body takes {whole.seconds:.3f} s"
            )
            assert refused.status == 413, (shape, refused.page[:300])
            assert "5つまで、かつ合計10MBまで" in refused.page, shape
            # curl stopped sending at the answer, long before the end of the body.
            read_first = MAX_TOTAL_BYTES if shape == "chunked form" else 0
            assert refused.uploaded < read_first + MAX_TOTAL_BYTES // 2, (shape, refused)
            assert refused.seconds < whole.seconds * 0.75, (shape, refused, whole)
    assert sorted(stack.storage.iterdir()) == stored  # nothing of them kept


def test_a_mailbox_is_not_flooded_through_the_registration(
    stack: PortalStack, tmp_path: Path
) -> None:
    address = "flooded@test.example.jp"
    client = Client(stack.gateway, tmp_path)
    for _ in range(5):
        assert _register(client, address)[0] == 200
    status, headers, page = _register(client, address)
    assert status == 429 and "しばらくお待ちください" in page
    assert headers["retry-after"] == "3600"
    stack.wait_for_link(address, count=5)
    assert len(stack.registration_mails(address)) == 5
