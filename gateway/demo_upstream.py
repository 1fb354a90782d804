"""``ca-demo-upstream``: a small sample portal behind the gateway. It trusts the identity
headers the gateway sets (and only the gateway can reach it: it listens on loopback).

    GET  /         greets the logged-in user by user ID and organisation (Japanese page),
                   with the ログアウト button the gateway's logout headers describe
    GET  …/echo    the request's path and headers as JSON (for checks), under any prefix
    GET  other     a card holder's attributes (on a card route) or the greeting
    POST /upload   reads the body in a stream; answers its size and SHA-256 as JSON
    GET  /big?bytes=N      N bytes, streamed
    GET  /slow?seconds=S   answers after S seconds
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import html
import json
import re
import sys
from collections.abc import AsyncIterator, Sequence
from urllib.parse import unquote

from ca_service.shared.net.admission import Admission
from ca_service.shared.net.guard import ConnectionGuard
from gateway.server import HttpServer, Request, Response
from gateway.web.login import CSRF_TOKEN_HEADER, LOGOUT_URL_HEADER

__all__ = ["handle", "main"]

_ORGANIZATION = re.compile(r"(?:^|,)O=((?:[^,\\]|\\.)*)")


def _organization_name(xfcc: str | None) -> str:
    """The O= of the certificate subject in the XFCC header (percent-encoded there)."""
    match = re.search(r'Subject="((?:[^"\\]|\\.)*)"', xfcc or "")
    if not match:
        return ""
    found = _ORGANIZATION.search(unquote(match.group(1)))
    return found.group(1).replace("\\", "") if found else ""


def _logout_form(request: Request) -> str:
    """ログアウト as the gateway's headers say: a form that POSTs the session's CSRF token to
    the logout URL (README, *Gateway → Logout*)."""
    url = request.head.get(LOGOUT_URL_HEADER)
    token = request.head.get(CSRF_TOKEN_HEADER)
    if not url or not token:
        return ""
    return (
        f'<form method="post" action="{html.escape(url)}" id="logout-form">'
        f'<input type="hidden" name="csrf" value="{html.escape(token)}">'
        '<button type="submit" id="logout">ログアウト</button></form>'
    )


def _json(status: int, value: object) -> Response:
    return Response(
        status,
        [("Content-Type", "application/json; charset=utf-8")],
        json.dumps(value, ensure_ascii=False).encode(),
    )


def _card_holder(request: Request) -> Response:
    """What the gateway vouched for about an identity card's holder (percent-encoded)."""
    rows = "".join(
        f'<tr><th>{label}</th><td id="{key}">'
        f"{html.escape(unquote(request.head.get(header) or ''))}</td></tr>"
        for key, label, header in (
            ("name", "お名前", "x-card-name"),
            ("address", "住所", "x-card-address"),
            ("birth-date", "生年月日", "x-card-birth-date"),
            ("sex", "性別", "x-card-sex"),
        )
    )
    page = f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>本人確認</title>
<link rel="stylesheet" href="/-/static/style.css"></head>
<body><main class="card">
<h1 id="card-holder">マイナンバーカードで本人確認しました</h1>
<table>{rows}</table>
</main></body></html>"""
    return Response(200, [("Content-Type", "text/html; charset=utf-8")], page.encode())


def _greeting(request: Request) -> Response:
    if request.head.get("x-card-name"):
        return _card_holder(request)
    user_id = request.head.get("x-user-id")
    if not user_id:
        body = "<p>本人確認ヘッダーがありません。ゲートウェイ経由でアクセスしてください。</p>"
        return Response(403, [("Content-Type", "text/html; charset=utf-8")], body.encode())
    organization_id = request.head.get("x-org-id") or ""
    role = request.head.get("x-user-role") or ""
    name = _organization_name(request.head.get("x-forwarded-client-cert"))
    master_link = (
        '<p><a href="/master/users">ユーザー管理（マスターユーザー）</a></p>'
        if role == "master"
        else ""
    )
    page = f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>ポータル</title>
<link rel="stylesheet" href="/-/static/style.css"></head>
<body><main class="card">
<h1 id="greeting">ようこそ、{html.escape(user_id)} さん</h1>
<p>団体: <span id="organization">{html.escape(name)}</span>
（団体ID <span id="organization-id">{html.escape(organization_id)}</span>）</p>
<p>権限: {"マスターユーザー" if role == "master" else "一般ユーザー"}</p>
{master_link}
{_logout_form(request)}
<p>このページはサンプルの業務システムです。ゲートウェイが電子証明書とパスワードで
本人を確認し、ユーザーIDと団体をヘッダーで伝えています。</p>
</main></body></html>"""
    return Response(200, [("Content-Type", "text/html; charset=utf-8")], page.encode())


async def _upload(request: Request) -> Response:
    digest = hashlib.sha256()
    size = 0
    async for piece in request.body():
        digest.update(piece)
        size += len(piece)
    return _json(200, {"bytes": size, "sha256": digest.hexdigest()})


async def _big(size: int) -> AsyncIterator[bytes]:
    block = b"x" * 65536
    while size > 0:
        piece = block[: min(size, len(block))]
        size -= len(piece)
        yield piece


async def handle(request: Request) -> Response:
    query = request.query_params()
    if request.path.endswith("/echo"):
        return _json(
            200,
            {"method": request.method, "path": request.target, "headers": request.head.headers},
        )
    if request.path == "/upload" and request.method == "POST":
        return await _upload(request)
    if request.path == "/big":
        size = int(query.get("bytes", "0") or 0)
        return Response(200, [("Content-Type", "application/octet-stream")], _big(size))
    if request.path == "/slow":
        await asyncio.sleep(float(query.get("seconds", "1") or 1))
        return _json(200, {"slow": True})
    return _greeting(request)


def _error(status: int, message: str) -> Response:
    return Response(status, [("Content-Type", "text/plain")], message.encode())


async def _run(host: str, port: int) -> None:
    guard = ConnectionGuard(Admission(10_000, 30.0), name="ca-demo-upstream")
    server = HttpServer(handle, guard=guard, error_page=_error)
    bound = await server.start(host, port)
    print(f"ca-demo-upstream: listening on http://{host}:{bound}/", flush=True)
    await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ca-demo-upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8081", help="HOST:PORT (loopback)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        asyncio.run(_run(host, int(port)))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
