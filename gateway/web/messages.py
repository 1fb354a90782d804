"""What the screens say, in Japanese, for the CA's refusals and the gateway's own (SPEC E4):
wrong credentials, LOCKED with the time it lifts, BLOCKED with whom to contact,
ALREADY_ISSUED with the date renewal opens, wrong or expired codes. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ca_service.domain.validity import JAPAN
from gateway.identity import Refusal

__all__ = ["for_ca_reason", "japan_date", "japan_time", "refusal_message"]

WRONG_CREDENTIALS = "ユーザーIDまたはパスワードが正しくありません。"
BLOCKED = (
    "このユーザーIDは閉塞されているため認証できません。一般ユーザーの方はマスターユーザーに、"
    "マスターユーザーの方はヘルプデスクにお問い合わせください。"
)
START_AGAIN = "ユーザー認証からやり直してください。"


def japan_time(moment: datetime) -> str:
    local = moment.astimezone(JAPAN)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def japan_date(moment: datetime) -> str:
    local = moment.astimezone(JAPAN)
    return f"{local.year}年{local.month}月{local.day}日"


def _parse(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def for_ca_reason(reason: str, metadata: Mapping[str, str]) -> str:
    """The screen's message for a CA error reason (google.rpc.ErrorInfo)."""
    if reason == "INVALID_CREDENTIALS":
        return WRONG_CREDENTIALS
    if reason == "LOCKED":
        until = _parse(metadata.get("locked_until"))
        when = f"{japan_time(until)}（日本時間）に" if until else "60分後に"
        return (
            "パスワードを連続して6回間違えたため、このユーザーIDはロックされています。"
            f"ロックは{when}解除されます。"
        )
    if reason == "BLOCKED":
        return BLOCKED
    if reason == "ALREADY_ISSUED":
        opens = _parse(metadata.get("renewal_opens_at"))
        when = f"{japan_date(opens)}から" if opens else "有効期限が切れる30日前から"
        return f"既に電子証明書が発行されているため認証できません。更新は{when}可能です。"
    if reason == "CODE_INVALID":
        tries = metadata.get("tries_left")
        if tries == "0":
            return (
                "認証コードを続けて間違えたため、この認証コードは無効になりました。" + START_AGAIN
            )
        if tries:
            return f"認証コードが正しくありません。あと{tries}回入力できます。"
        return "認証コードは半角数字6桁で入力してください。"
    if reason == "CODE_EXPIRED":
        return (
            "認証コードの有効期限（30分）が切れたか、新しい認証コードが発行されました。"
            + START_AGAIN
        )
    if reason == "TICKET_INVALID":
        return "認証の有効期限が切れました。" + START_AGAIN
    if reason == "INVALID_USER_ID":
        return "ユーザーIDは半角英字と数字をそれぞれ1文字以上含む6～12桁で入力してください。"
    if reason == "INVALID_PASSWORD":
        return (
            "パスワードは半角英大文字・英小文字・数字・記号をすべて含む8～12桁で入力してください。"
        )
    if reason == "INVALID_EMAIL":
        return "メールアドレスが正しくありません。"
    if reason in ("ALREADY_EXISTS", "USER_EXISTS"):
        return "このユーザーIDは既に使われています。別のユーザーIDを指定してください。"
    if reason == "PERMISSION_DENIED":
        return "この操作は許可されていません。"
    if reason == "USER_NOT_FOUND":
        return "指定されたユーザーが見つかりません。"
    return "処理できませんでした。しばらくしてからもう一度お試しください。"


def refusal_message(refusal: Refusal) -> tuple[str, str]:
    """(heading, message) for a client certificate the gateway refuses."""
    messages = {
        Refusal.MALFORMED: "電子証明書を読み取れません。",
        Refusal.NOT_OURS: "この電子証明書は本サービスが発行したものではありません。",
        Refusal.NOT_YET_VALID: "電子証明書の有効期間がまだ始まっていません。",
        Refusal.EXPIRED: (
            "電子証明書の有効期限が切れています。[電子証明書発行]から再発行してください。"
        ),
        Refusal.NO_CLIENT_AUTH: "この電子証明書はログインには使えません。",
        Refusal.REVOKED: (
            "この電子証明書は失効しています。新しい電子証明書を発行してログインしてください。"
        ),
        Refusal.STALE: (
            "電子証明書の失効状況を確認できないため、現在ログインできません。"
            "しばらくしてからもう一度お試しください。"
        ),
        Refusal.UNKNOWN_USER: "この電子証明書のユーザーIDは登録されていません。",
        Refusal.LOCKED: (
            "このユーザーIDはパスワードの連続誤りによりロックされています。"
            "60分経過後にもう一度お試しください。"
        ),
        Refusal.BLOCKED: BLOCKED,
    }
    return "ログインできません", messages[refusal]
