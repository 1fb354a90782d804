"""The procedure portal (SPEC D1–D3, seed 004) as an upstream application behind the gateway:
e-mail registration → the link (CA) → the card's basic information → the re-submission
form → confirm → submit → completion page and mail.

Under ``<mount>`` (gateway mode ``public``) are the registration and the link; under
``<mount>card/`` (mode ``card``) the gateway has verified a card certificate and passes its
attributes in headers, which the portal trusts as the sample upstream trusts the identity
headers (it listens where only the gateway reaches it). A session cookie (HttpOnly, Secure,
SameSite=Strict) names a row that binds the verified address and, from the first card page
on, the card's fingerprint; every form carries a CSRF token; the confirm page carries an
idempotency key, so a submission is made once however often it is sent."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from ca_service.errors import StoreError
from ca_service.shared.clock import Clock
from ca_service.shared.http.messages import ProtocolError
from ca_service.shared.japan import format_japan_time
from gateway.portal import procedure
from gateway.portal.card import Card, CardHeaders, birth_date_text, card_from_headers, sex_text
from gateway.portal.errors import (
    CaRefused,
    LinkRefused,
    MalformedUpload,
    PortalError,
    PortalUnavailable,
    StaleConfirmation,
    UploadTooLarge,
)
from gateway.portal.ports import PortalCa
from gateway.portal.procedure import Invalid
from gateway.portal.store import PortalSession, PortalStore
from gateway.portal.uploads import FORM_OVERHEAD, ReceivedForm, receive_form
from gateway.server import Request, Response, behind
from gateway.web.pages import PAGE_HEADERS

__all__ = [
    "HEALTH_PATH",
    "SESSION_COOKIE",
    "STATIC_FILES",
    "CompletionMails",
    "Portal",
    "size_text",
]

log = logging.getLogger("ca-portal")

# __Secure-: set over HTTPS only. Scoped to the portal's path, not the whole host: behind the
# gateway other upstreams share the host, and the portal's session must not reach them.
SESSION_COOKIE = "__Secure-portal-session"
CSRF_COOKIE = "__Secure-portal-csrf"
# The health check's path: outside every mount, and the gateway routes no `/-/` path
# upstream, so only what reaches the portal's own port (the kubelet's probe) asks it.
HEALTH_PATH = "/-/health"
# Longer than a healthy PostgreSQL takes, shorter than the probes' timeout (2 s).
_HEALTH_TIMEOUT = 1.5
# Under <mount>static/, with their types (the Kubernetes liveness probe fetches one).
STATIC_FILES = {
    "portal.js": "text/javascript; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
}

_LINK_MESSAGES = {
    "EMAIL_LINK_EXPIRED": (
        "URLの有効期限が切れています。",
        "メール認証URLは、送信から{validity}以内にアクセスいただく必要があります。",
    ),
    "EMAIL_LINK_USED": (
        "このURLは既に使用されています。",
        "メール認証URLは1回のみ有効です。",
    ),
    "EMAIL_LINK_UNKNOWN": (
        "URLが正しくありません。",
        "メールに記載されたURLを、途中で切れないようにすべてコピーしてアクセスしてください。",
    ),
}


def size_text(size: int) -> str:
    """A file size as the screens show it (KB below 1 MB)."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))}KB"
    return f"{size / (1024 * 1024):.1f}MB"


@dataclass(frozen=True, slots=True)
class _Shown:
    """A file as the screens list it."""

    id: int
    name: str
    size: int

    @property
    def size_text(self) -> str:
        return size_text(self.size)


class Portal:
    def __init__(
        self,
        *,
        store: PortalStore,
        ca: PortalCa,
        clock: Clock,
        storage_dir: Path,
        public_url: str,
        mount: str,
        card_headers: CardHeaders,
        session_lifetime: timedelta,
        site_name: str,
        registrations_per_hour: int = 5,
    ) -> None:
        self._store = store
        self._ca = ca
        self._clock = clock
        self._storage = storage_dir
        self._public_url = public_url
        self._mount = mount
        self._card_headers = card_headers
        self._lifetime = session_lifetime
        self._site_name = site_name
        self._registrations_per_hour = registrations_per_hour
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("gateway.portal", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.mails = CompletionMails(store, ca, clock)
        card = mount + "card/"
        self._routes: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {
            ("GET", mount): self._register_form,
            ("POST", mount + "register"): self._register,
            ("GET", mount + "verify"): self._verify_form,
            ("POST", mount + "verify"): self._verify,
            ("GET", mount + "terms"): self._terms,
            ("GET", mount + "privacy"): self._terms,
            ("GET", card): self._identity,
            ("POST", card + "identity"): self._identity_confirmed,
            ("GET", card + "resubmit"): self._resubmit_form,
            ("POST", card + "resubmit"): self._resubmit,
            ("GET", card + "confirm"): self._confirm_form,
            ("POST", card + "submit"): self._submit,
            ("GET", card + "complete"): self._complete,
        }

    # -- plumbing -------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = request.path
        if request.method == "GET" and path == HEALTH_PATH:
            return await self.health()
        if request.method == "GET" and path.startswith(self._mount + "static/"):
            return self._static(path.removeprefix(self._mount + "static/"))
        route = self._routes.get((request.method, path))
        if route is None:
            if any(p == path for _, p in self._routes):
                return self._message(405, "method", "このページは表示できません。", "")
            return self._message(404, "not-found", "ページが見つかりません。", "")
        try:
            return await route(request)
        except (PortalUnavailable, StoreError, OSError) as exc:
            log.warning("portal unavailable: %s", exc)
            return self._message(
                503,
                "unavailable",
                "ただいま処理できません。",
                "しばらくしてから、もう一度お試しください。",
                headers=[("Retry-After", "30")],
            )
        except PortalError as exc:
            log.warning("request refused: %s", exc)
            return self._message(
                exc.http_status,
                "refused",
                "お手続きを続けられませんでした。",
                "お手数ですが、最初からもう一度お試しください。",
            )

    async def health(self) -> Response:
        """200 while the portal can do its work: its database answers a read and the files'
        directory is writable; 503 otherwise. The CA is not asked: without it the pages
        still answer (the registration says to try later, completion mails wait in the
        database), and taking every portal out of its Service would only swap those pages
        for the gateway's 502. The body names which part failed, nothing else."""
        database = True
        try:
            await asyncio.wait_for(self._store.ping(), _HEALTH_TIMEOUT)
        except (StoreError, TimeoutError) as exc:
            log.warning("health: database unavailable: %s", exc)
            database = False
        storage = os.access(self._storage, os.W_OK | os.X_OK) and self._storage.is_dir()
        ok = database and storage
        body = {"status": "ok" if ok else "unavailable", "database": database, "storage": storage}
        return Response(
            200 if ok else 503,
            [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            json.dumps(body).encode(),
        )

    def render(
        self,
        template: str,
        *,
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
        **context: Any,
    ) -> Response:
        context.setdefault("error", None)
        context.setdefault("page_id", template.removesuffix(".html"))
        html = self._templates.get_template(template).render(
            site_name=self._site_name, mount=self._mount, **context
        )
        return Response(status, [*PAGE_HEADERS, *(headers or [])], html.encode())

    def error_page(self, status: int, message: str) -> Response:
        """For the HTTP core's own refusals (a broken request)."""
        return self._message(status, "error", "リクエストを処理できませんでした。", "")

    def _message(
        self,
        status: int,
        page_id: str,
        heading: str,
        message: str,
        *,
        detail: str = "",
        link: tuple[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        url, text = link or (self._mount, "TOPへ")
        return self.render(
            "message.html",
            status=status,
            headers=headers,
            page_id=page_id,
            heading=heading,
            message=message,
            detail=detail,
            link_url=url,
            link_text=text,
        )

    def _redirect(self, path: str, headers: list[tuple[str, str]] | None = None) -> Response:
        return Response(303, [("Location", path), ("Cache-Control", "no-store"), *(headers or [])])

    def _static(self, name: str) -> Response:
        content_type = STATIC_FILES.get(name)
        if content_type is None:
            return Response(404, [("Content-Type", "text/plain")], b"not found")
        data = resources.files("gateway.portal").joinpath("static").joinpath(name).read_bytes()
        return Response(
            200,
            [
                ("Content-Type", content_type),
                ("Cache-Control", "max-age=300"),
                ("X-Content-Type-Options", "nosniff"),
            ],
            data,
        )

    def _cookie(self, name: str, value: str, max_age: int) -> tuple[str, str]:
        return (
            "Set-Cookie",
            f"{name}={value}; Path={self._mount}; Max-Age={max_age}; Secure; HttpOnly; "
            "SameSite=Strict",
        )

    async def _form(self, request: Request) -> dict[str, str]:
        return await request.form(limit=8 * 1024)

    # -- CSRF before a session: a random token in a cookie and in the form -----------------

    def _pre_session_csrf(self, request: Request) -> tuple[str, list[tuple[str, str]]]:
        token = request.cookies().get(CSRF_COOKIE, "")
        if len(token) >= 32:
            return token, []
        token = secrets.token_urlsafe(32)
        return token, [self._cookie(CSRF_COOKIE, token, 86400)]

    def _pre_session_csrf_ok(self, request: Request, form: dict[str, str]) -> bool:
        cookie = request.cookies().get(CSRF_COOKIE, "")
        return len(cookie) >= 32 and hmac.compare_digest(cookie, form.get("csrf", ""))

    def _forged(self) -> Response:
        return self._message(
            403,
            "forged",
            "画面の有効期限が切れました。",
            "お手数ですが、もう一度最初の画面から操作してください。",
        )

    async def _pre_session_form(self, request: Request) -> dict[str, str] | Response:
        """The posted form of a page before a session, else the page that refuses it."""
        form = await self._form(request)
        if not self._pre_session_csrf_ok(request, form):
            return self._forged()
        return form

    # -- registration (public) ------------------------------------------------------------

    async def _register_form(self, request: Request) -> Response:
        csrf, headers = self._pre_session_csrf(request)
        return self.render(
            "register.html",
            headers=headers,
            csrf=csrf,
            address="",
            address_again="",
            consented=False,
        )

    @behind(_pre_session_form)
    async def _register(self, request: Request, form: dict[str, str]) -> Response:
        address, again = form.get("address", "").strip(), form.get("address_again", "").strip()
        consented = form.get("consent") == "1"
        try:
            procedure.check_addresses(address, again, consented)
        except Invalid as exc:
            return self.render(
                "register.html",
                status=400,
                csrf=form["csrf"],
                error=exc.message,
                address=address,
                address_again=again,
                consented=consented,
            )
        if not await self._store.admit_registration(
            address, self._clock.now(), _HOUR, self._registrations_per_hour
        ):
            return self._message(
                429,
                "too-many-registrations",
                "しばらくお待ちください。",
                "このメールアドレスには、短い時間に多くの利用申込用URLをお送りしています。"
                "届いているメールをご確認いただくか、しばらく時間をおいてからもう一度お試しください。",
                headers=[("Retry-After", "3600")],
            )
        try:
            await self._ca.request_registration(address, self._public_url + "verify")
        except CaRefused as exc:
            log.info("registration refused by the CA: %s", exc.reason)
            return self.render(
                "register.html",
                status=400,
                csrf=form["csrf"],
                error="このメールアドレスは登録できません。入力内容をご確認ください。",
                address=address,
                address_again=again,
                consented=consented,
            )
        log.info("registration link requested")
        return self.render(
            "register_sent.html",
            address=address,
            link_validity=await self._ca.link_validity_text(),
        )

    async def _verify_form(self, request: Request) -> Response:
        """The link from the mail shows its state (CA, ``check_only``) and a button
        instead of using the token at once: a mail scanner fetching the link must not use it
        up."""
        token = request.query_params().get("token", "")
        try:
            address = await self._ca.check_registration(token)
        except LinkRefused as exc:
            return await self._link_refused(exc)
        csrf, headers = self._pre_session_csrf(request)
        return self.render("verify.html", headers=headers, csrf=csrf, token=token, address=address)

    @behind(_pre_session_form)
    async def _verify(self, request: Request, form: dict[str, str]) -> Response:
        try:
            address = await self._ca.confirm_registration(form.get("token", ""))
        except LinkRefused as exc:
            return await self._link_refused(exc)
        key, _ = await self._store.create_session(address, self._clock.now(), self._lifetime)
        cookie = self._cookie(SESSION_COOKIE, key, int(self._lifetime.total_seconds()))
        return self._redirect(self._mount + "card/", [cookie])

    async def _link_refused(self, refusal: LinkRefused) -> Response:
        heading, detail = _LINK_MESSAGES.get(refusal.reason, _LINK_MESSAGES["EMAIL_LINK_UNKNOWN"])
        if "{validity}" in detail:
            validity = await self._ca.link_validity_text()
            detail = detail.format(validity=validity) if validity else ""
        return self._message(
            410 if refusal.reason != "EMAIL_LINK_UNKNOWN" else 404,
            "link-refused",
            heading,
            "お手数ですが、メールアドレスの登録からやり直し、新しいURLを受け取ってください。",
            detail=detail,
            link=(self._mount, "メールアドレスを登録し直す"),
        )

    async def _terms(self, request: Request) -> Response:
        kind = "terms" if request.path.endswith("terms") else "privacy"
        heading = "マイナ手続きポータル利用規約" if kind == "terms" else "個人情報保護管理規程"
        return self.render("terms.html", kind=kind, heading=heading)

    # -- the card pages -------------------------------------------------------------------

    async def _card_session(self, request: Request) -> tuple[PortalSession, Card] | Response:
        """The session and the card of a card page, or the page that says why not."""
        card = card_from_headers(request.head.get, self._card_headers)
        if card is None:
            return self._message(
                403,
                "no-card",
                "マイナンバーカードの電子証明書が確認できません。",
                "マイナンバーカードを読み取れる環境で、もう一度お試しください。",
            )
        key = request.cookies().get(SESSION_COOKIE, "")
        session = await self._store.session(key, self._clock.now()) if key else None
        if session is None:
            return self._message(
                401,
                "no-session",
                "メール認証の有効期限が切れたか、メール認証が済んでいません。",
                "お手数ですが、メールアドレスの登録からやり直してください。",
                link=(self._mount, "メールアドレスを登録する"),
            )
        if session.card_fingerprint != card.fingerprint:
            if session.card_fingerprint is not None or not await self._store.bind_card(
                session, card.fingerprint
            ):
                log.warning("a portal session was presented with another card")
                return self._message(
                    403,
                    "card-mismatch",
                    "メール認証のときと異なるマイナンバーカードが読み取られました。",
                    "お手数ですが、メールアドレスの登録からやり直してください。",
                )
            session = await self._store.session(key, self._clock.now()) or session
        return session, card

    def _csrf_ok(self, session: PortalSession, form: dict[str, str]) -> bool:
        return hmac.compare_digest(session.csrf, form.get("csrf", ""))

    @behind(_card_session)
    async def _identity(self, request: Request, found: tuple[PortalSession, Card]) -> Response:
        session, card = found
        return self.render(
            "identity.html",
            csrf=session.csrf,
            card=card,
            birth_date=birth_date_text(card.birth_date),
            sex=sex_text(card.sex),
        )

    @behind(_card_session)
    async def _identity_confirmed(
        self, request: Request, found: tuple[PortalSession, Card]
    ) -> Response:
        session, _ = found
        if not self._csrf_ok(session, await self._form(request)):
            return self._forged()
        await self._store.confirm_identity(session)
        return self._redirect(self._mount + "card/resubmit")

    async def _confirmed_session(self, request: Request) -> tuple[PortalSession, Card] | Response:
        found = await self._card_session(request)
        if isinstance(found, Response):
            return found
        if not found[0].identity_confirmed:
            return self._redirect(self._mount + "card/")
        return found

    @behind(_confirmed_session)
    async def _resubmit_form(self, request: Request, found: tuple[PortalSession, Card]) -> Response:
        session, _ = found
        return await self._show_form(session)

    async def _show_form(
        self,
        session: PortalSession,
        *,
        status: int = 200,
        errors: dict[str, str] | None = None,
        error: str | None = None,
    ) -> Response:
        staged = await self._store.staged_files(session)
        return self.render(
            "resubmit.html",
            status=status,
            csrf=session.csrf,
            error=error,
            errors=errors or {},
            member_number=session.member_number,
            receipt_number=session.original_receipt,
            files=[_Shown(f.id, f.name, f.size) for f in staged],
            total_text=size_text(sum(f.size for f in staged)),
            member_digits=procedure.MEMBER_NUMBER_DIGITS,
            limit_text=procedure.limit_text(),
            max_mb=procedure.MAX_TOTAL_BYTES // (1024 * 1024),
        )

    @behind(_confirmed_session)
    async def _resubmit(self, request: Request, found: tuple[PortalSession, Card]) -> Response:
        """The form, with files chosen this round: each streams to disk and joins the
        files attached before; then the action — attach, remove one, or check all."""
        session, _ = found
        staged = await self._store.staged_files(session)
        files_left, bytes_left = procedure.upload_allowance([f.size for f in staged], len(staged))
        too_large = f"添付書類は{procedure.limit_text()}です。"
        declared = request.head.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > (bytes_left + FORM_OVERHEAD)
        ):
            # Refused before any of the body is read.
            refusal = await self._show_form(session, status=413, error=too_large + _TOO_LARGE_HINT)
            return _refusing_the_rest(refusal)
        chunks = request.body()
        try:
            received = await receive_form(
                chunks,
                request.head.get("content-type"),
                self._storage,
                max_files=files_left,
                max_bytes=bytes_left,
            )
        except UploadTooLarge as exc:
            if self._csrf_ok(session, exc.fields):  # keep what was typed before the files
                await self._store.save_draft(
                    session,
                    exc.fields.get("member_number", ""),
                    exc.fields.get("receipt_number", ""),
                )
                session = await self._reload(session)
            refusal = await self._show_form(session, status=413, error=too_large + _TOO_LARGE_HINT)
            return _refusing_the_rest(refusal)
        except MalformedUpload as exc:
            log.info("malformed re-submission form: %s", exc)
            return self._message(400, "malformed", "送信内容を読み取れませんでした。", "")
        except ProtocolError:
            raise
        try:
            return await self._resubmit_received(session, received)
        except BaseException:
            _discard([f.path for f in received.files])
            raise

    async def _resubmit_received(self, session: PortalSession, received: ReceivedForm) -> Response:
        form, new_files = received.fields, received.files
        if not self._csrf_ok(session, form):
            _discard([f.path for f in new_files])
            return self._forged()
        member, receipt = form.get("member_number", ""), form.get("receipt_number", "")
        # As typed: the checks are strict (a stray space is an error the page names).
        await self._store.save_draft(session, member, receipt)
        if new_files:

            def admit(sizes: list[int]) -> None:
                if len(sizes) > procedure.MAX_FILES or sum(sizes) > procedure.MAX_TOTAL_BYTES:
                    raise UploadTooLarge("the draft would pass the limits")

            try:
                await self._store.stage_files(
                    session,
                    [(f.name, f.content_type, f.size, f.sha256, str(f.path)) for f in new_files],
                    self._clock.now(),
                    admit,
                )
            except UploadTooLarge:
                _discard([f.path for f in new_files])
                session = await self._reload(session)
                return await self._show_form(
                    session,
                    status=413,
                    error=f"添付書類は{procedure.limit_text()}です。" + _TOO_LARGE_HINT,
                )
        action = form.get("action", "upload")
        session = await self._reload(session)
        if action.startswith("remove:") and action[7:].isdigit():
            path = await self._store.remove_file(session, int(action[7:]))
            if path is not None:
                _discard([Path(path)])
            return self._redirect(self._mount + "card/resubmit")
        if action != "confirm":
            return self._redirect(self._mount + "card/resubmit")
        errors = await self._check_draft(session)
        if errors:
            return await self._show_form(
                session, status=400, errors=errors, error="入力内容に誤りがあります。"
            )
        await self._store.freeze_draft(session)
        return self._redirect(self._mount + "card/confirm")

    async def _reload(self, session: PortalSession) -> PortalSession:
        """The session row as it is now (after this request's own writes)."""
        fresh = await self._store.session_by_hash(session.key_hash, self._clock.now())
        return fresh or session

    async def _check_draft(self, session: PortalSession) -> dict[str, str]:
        errors: dict[str, str] = {}
        checks: list[Callable[[], object]] = [
            lambda: procedure.check_member_number(session.member_number),
            lambda: procedure.parse_receipt_number(session.original_receipt, self._clock.now()),
        ]
        staged = await self._store.staged_files(session)
        checks.append(lambda: procedure.check_files([f.size for f in staged]))
        if not session.original_receipt:
            errors["receipt_number"] = "受付番号を入力してください。"
            checks.pop(1)
        for check in checks:
            try:
                check()
            except Invalid as exc:
                errors[exc.field] = exc.message
        return errors

    @behind(_confirmed_session)
    async def _confirm_form(self, request: Request, found: tuple[PortalSession, Card]) -> Response:
        session, _ = found
        if session.submit_token is None:
            return self._redirect(self._mount + "card/resubmit")
        staged = await self._store.staged_files(session)
        return self.render(
            "confirm.html",
            csrf=session.csrf,
            token=session.submit_token,
            member_number=session.member_number,
            receipt_number=session.original_receipt,
            files=[_Shown(f.id, f.name, f.size) for f in staged],
            total_text=size_text(sum(f.size for f in staged)),
        )

    @behind(_card_session)
    async def _submit(self, request: Request, found: tuple[PortalSession, Card]) -> Response:
        session, card = found
        form = await self._form(request)
        if not self._csrf_ok(session, form):
            return self._forged()
        try:
            receipt, new = await self._store.submit(
                session, form.get("token", ""), card, self._clock.now()
            )
        except StaleConfirmation:
            return self._message(
                409,
                "stale",
                "申請内容が変更されたか、既に申請済みです。",
                "お手数ですが、申請内容をもう一度ご確認ください。",
                link=(self._mount + "card/resubmit", "添付資料再提出へ"),
            )
        except Invalid as exc:
            return await self._show_form(session, status=400, errors={exc.field: exc.message})
        if new:
            log.info("re-submission received: receipt %s", receipt)
            self.mails.kick()
        return self._redirect(self._mount + "card/complete?receipt=" + quote(receipt))

    @behind(_card_session)
    async def _complete(self, request: Request, found: tuple[PortalSession, Card]) -> Response:
        session, card = found
        receipt = request.query_params().get("receipt", "")
        submission = await self._store.submission(receipt) if receipt else None
        if (
            submission is None
            or submission.card_fingerprint != card.fingerprint
            or submission.address != session.address
        ):
            return self._message(404, "not-found", "ページが見つかりません。", "")
        return self.render(
            "complete.html",
            receipt_number=submission.receipt_number,
            submitted_at=format_japan_time(submission.submitted_at),
        )


_HOUR = timedelta(hours=1)
_TOO_LARGE_HINT = "ファイルの数を減らすか、解像度を低くする等の調整をお願いいたします。"


def _refusing_the_rest(page: Response) -> Response:
    """``page`` goes out at once, and the connection closes after it: the rest of the refused
    upload is not read (RFC 9112 §9.6). The HTTP core half-closes first and drops what still
    arrives for a moment, so the sender reads the page rather than a reset; a sender that
    watches for an early answer (curl, the gateway's proxy) stops sending on it."""
    page.close = True
    return page


def _discard(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class CompletionMails:
    """Hands each submission's completion mail to the CA, at least once: a submission is
    committed first, its mail is marked sent once the CA took it (into its outbox), and
    whatever the CA could not take is tried again."""

    def __init__(self, store: PortalStore, ca: PortalCa, clock: Clock, retry: float = 5.0) -> None:
        self._store = store
        self._ca = ca
        self._clock = clock
        self._retry = retry
        self._wake = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    async def send_pending(self) -> int:
        """Sends what is pending; the number sent."""
        sent = 0
        for receipt, address, submitted_at in await self._store.unmailed():
            await self._ca.send_completion_mail(address, receipt, submitted_at)
            await self._store.mark_mailed(receipt, self._clock.now())
            sent += 1
        return sent

    async def run(self) -> None:
        while True:
            try:
                await self.send_pending()
            except (PortalUnavailable, StoreError) as exc:
                log.warning("completion mails wait: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry):
                    await self._wake.wait()
            self._wake.clear()
