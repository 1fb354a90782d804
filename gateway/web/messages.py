"""What the screens say, in Japanese (SPEC E4): the CA's refusals — wrong credentials, LOCKED
with the time it lifts, BLOCKED with whom to contact, ALREADY_ISSUED with the date renewal
opens, wrong or expired codes — and the gateway's own.

The CA's refusals are a table keyed by its closed catalogue of reasons (:class:`ErrorReason`,
generated from the proto); a reason without an entry gets a general message. The figures of
the rules (6 wrong passwords, 60 minutes, …) come from the CA (:class:`Rules`), never from
copies here; ``tests/gateway/test_messages.py`` finds none. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from ca_service.api import ErrorReason
from ca_service.shared.japan import format_japan_date, format_japan_time, format_lock_end
from gateway.accounts import Rules
from gateway.identity import Refusal

__all__ = [
    "CSRF_EXPIRED",
    "UNAVAILABLE",
    "busy_message",
    "duration_text",
    "email_link_message",
    "for_ca_reason",
    "hours_text",
    "rate_limited_message",
    "refusal_message",
    "refusal_status",
]

# (heading, message) pairs and sentences the screens use as they are.
UNAVAILABLE = (
    "ただいま処理できません",
    "一時的にサービスを利用できません。しばらくしてからもう一度お試しください。",
)
CA_UNAVAILABLE = (
    "ただいま処理できません",
    "電子証明書サービスに接続できません。しばらくしてからもう一度お試しください。",
)
CSRF_EXPIRED = (
    "画面の有効期限が切れました",
    "画面を開いてから時間が経ったため、処理できませんでした。もう一度操作してください。",
)
NOT_ALLOWED = ("お取り扱いできません", "この操作はできません。")
NOT_FOUND = ("ページが見つかりません", "指定されたページはありません。")
CERTIFICATE_NEEDED = "ログインには電子証明書が必要です。ブラウザで電子証明書を選択してください。"
NOT_THE_CERTIFICATE_USER = (
    "ユーザーIDが選択中の電子証明書と一致しません。電子証明書のユーザーIDでログインしてください。"
)
REGISTRATION_REFUSED = (
    "団体IDまたは初期パスワードが正しくないか、初期パスワードの有効期限が切れています。"
)
REGISTRATION_SPENT = "初期パスワードが使用済みか有効期限が切れています。"
PASSWORDS_DIFFER = "パスワードと確認用パスワードが一致しません。"
EMAILS_DIFFER = "メールアドレスと確認用メールアドレスが一致しません。"
# C6, C7: a certificate issued but not imported is issued; the way out is its revocation,
# which a master user may ask for a general user of the organisation, and the operator for
# anyone.
REISSUE_AFTER_REVOCATION = (
    "電子証明書ファイルを紛失した場合やインポートできなかった場合は、一般ユーザーの方は"
    "マスターユーザーまたはサービス運営者に、マスターユーザーの方はサービス運営者に"
    "電子証明書の失効を依頼したうえで、再発行してください。"
)
DOWNLOAD_EXPIRED = (
    "ダウンロードできません",
    "ダウンロードの有効期限が切れました。電子証明書は発行済みです。" + REISSUE_AFTER_REVOCATION,
)
MASTERS_ONLY = ("表示できません", "この画面はマスターユーザーだけが利用できます。")
LOGIN_NEEDED = "ログインしてください"
CERTIFICATE_LOGIN_NEEDED = "この操作には電子証明書によるログインが必要です。"
LOGIN_EXPIRED = "ログインの有効期限が切れました。"
LOGGED_OUT = "ログアウトしました。"
# A session logged in before the user's password changed (its own change elsewhere, a
# master user's or the operator's reset) has ended.
PASSWORD_CHANGED_LOGGED_OUT = (
    "パスワードが変更されたため、ログアウトしました。もう一度ログインしてください。"  # noqa: S105
)
INITIAL_NO_LONGER_SHOWN = (
    "初期パスワードの表示は終了しました。初期パスワードが分からなくなった場合は、サービス運営者に"
    "初期パスワードの再発行を依頼してください。"
)
MALFORMED_REQUEST = "リクエストを処理できません"
UPSTREAM_TIMEOUT = (
    "応答がありません",
    "業務システムからの応答が時間内にありませんでした。しばらくしてからもう一度お試しください。",
)
UPSTREAM_UNREACHABLE = (
    "業務システムに接続できません",
    "業務システムに接続できませんでした。しばらくしてからもう一度お試しください。",
)

_WRONG_CREDENTIALS = "ユーザーIDまたはパスワードが正しくありません。"
_BLOCKED = (
    "このユーザーIDは閉塞されているため認証できません。一般ユーザーの方はマスターユーザーに、"
    "マスターユーザーの方はヘルプデスクにお問い合わせください。"
)
_START_AGAIN = "ユーザー認証からやり直してください。"
_USER_ID_TAKEN = "このユーザーIDは既に使われています。別のユーザーIDを指定してください。"
_GENERAL = "処理できませんでした。しばらくしてからもう一度お試しください。"


def duration_text(duration: timedelta) -> str:
    """A rule's duration as the screens say it: whole minutes in minutes (分), anything else
    in seconds (秒; only tests make rules that short)."""
    seconds = int(duration.total_seconds())
    return f"{seconds // 60}分" if seconds % 60 == 0 else f"{seconds}秒"


def hours_text(duration: timedelta) -> str:
    """A long duration (an e-mail link's validity, which the seed gives in hours) in whole
    hours (時間), else as :func:`duration_text` says it. The gateway's screens and the
    portal's both say it so."""
    seconds = int(duration.total_seconds())
    return f"{seconds // 3600}時間" if seconds and seconds % 3600 == 0 else duration_text(duration)


def _wait(seconds: int) -> str:
    return f"{seconds}秒" if seconds < 60 else f"{-(-seconds // 60)}分"


def rate_limited_message(retry_after: int) -> tuple[str, str]:
    """(heading, message) for a client that checked too many passwords or codes (429)."""
    return (
        "しばらくお待ちください",
        "短い時間に多くの認証が行われたため、ご利用のネットワークからの認証を一時的に"
        f"受け付けていません。{_wait(retry_after)}ほど待ってからもう一度お試しください。",
    )


def busy_message(retry_after: int) -> tuple[str, str]:
    """(heading, message) when the CA has too many password checks at once (503)."""
    return (
        "ただいま混み合っています",
        "認証の処理が混み合っているため、処理できませんでした。"
        f"{_wait(retry_after)}ほど待ってからもう一度お試しください。",
    )


def _instant(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo is not None else None


# -- the CA's refusals -----------------------------------------------------------------------

# A message from the refusal's metadata (google.rpc.ErrorInfo) and the CA's rule figures.
Message = Callable[[Mapping[str, str], Rules], str]


def _says(text: str) -> Message:
    return lambda _metadata, _rules: text


def _locked(metadata: Mapping[str, str], rules: Rules) -> str:
    until = _instant(metadata.get("locked_until"))
    when = (
        f"{format_lock_end(until)}（日本時間）に"
        if until
        else f"{duration_text(rules.lock_duration)}後に"
    )
    return (
        f"パスワードを連続して{rules.failures_to_lock}回間違えたため、このユーザーIDはロックされて"
        f"います。ロックは{when}解除されます。"
    )


def _already_issued(metadata: Mapping[str, str], rules: Rules) -> str:
    opens = _instant(metadata.get("renewal_opens_at"))
    when = (
        f"{format_japan_date(opens)}から"
        if opens
        else f"有効期限が切れる{rules.renewal_window_days}日前から"
    )
    return (
        f"既に電子証明書が発行されているため認証できません。更新は{when}可能です。"
        + REISSUE_AFTER_REVOCATION
    )


def _code_invalid(metadata: Mapping[str, str], rules: Rules) -> str:
    tries = metadata.get("tries_left")
    if tries == "0":
        return "認証コードを続けて間違えたため、この認証コードは無効になりました。" + _START_AGAIN
    if tries:
        return f"認証コードが正しくありません。あと{tries}回入力できます。"
    return f"認証コードは半角数字{rules.code_digits}桁で入力してください。"


def _code_expired(_metadata: Mapping[str, str], rules: Rules) -> str:
    return (
        f"認証コードの有効期限（{duration_text(rules.code_validity)}）が切れたか、新しい"
        "認証コードが発行されました。" + _START_AGAIN
    )


def _characters(subject: str, kinds: str, shortest: int, longest: int) -> str:
    return f"{subject}は{kinds}含む{shortest}～{longest}桁で入力してください。"


def _user_id_rule(_metadata: Mapping[str, str], rules: Rules) -> str:
    return _characters(
        "ユーザーID",
        "半角英字と数字をそれぞれ1文字以上",
        rules.user_id_min_length,
        rules.user_id_max_length,
    )


def _password_rule(_metadata: Mapping[str, str], rules: Rules) -> str:
    return _characters(
        "パスワード",
        "半角英大文字・英小文字・数字・記号をすべて",
        rules.password_min_length,
        rules.password_max_length,
    )


def _link_expired(_metadata: Mapping[str, str], rules: Rules) -> str:
    return (
        f"このURLは有効期限（{hours_text(rules.email_link_validity)}）が切れているか、"
        "新しいURLが発行されたため無効です。"
    )


_EMAIL_LINK_REASONS = (
    ErrorReason.EMAIL_LINK_EXPIRED,
    ErrorReason.EMAIL_LINK_USED,
    ErrorReason.EMAIL_LINK_UNKNOWN,
)


def email_link_message(reason: ErrorReason, rules: Rules) -> tuple[str, str] | None:
    """(heading, message) of the page an e-mail verification link opens when the link
    cannot be used (SPEC D1); None for any other refusal."""
    if reason not in _EMAIL_LINK_REASONS:
        return None
    heading = {
        ErrorReason.EMAIL_LINK_EXPIRED: "URLの有効期限が切れています",
        ErrorReason.EMAIL_LINK_USED: "このURLは使用済みです",
        ErrorReason.EMAIL_LINK_UNKNOWN: "URLが正しくありません",
    }[reason]
    return heading, for_ca_reason(reason, {}, rules)


def _resend_limited(metadata: Mapping[str, str], rules: Rules) -> str:
    at = _instant(metadata.get("retry_at"))
    wait = metadata.get("retry_after_seconds", "")
    if wait.isdigit() and int(wait) < 120:
        when = f"{_wait(int(wait))}ほど待ってから"
    elif at is not None:
        when = f"{format_japan_time(at, round_up=True)}（日本時間）以降に"
    else:
        when = "しばらくしてから"
    return (
        f"認証コードの再送は、前回の送信から{duration_text(rules.resend_interval)}以上あけて、"
        f"{duration_text(rules.resend_window)}に{rules.resends_per_window}回まで行えます。"
        f"{when}もう一度お試しください。"
    )


CHOOSE_YOUR_OWN = (
    "このパスワードはマスターユーザーから通知された初期パスワードのため、このままでは"
    "使用できません。[一般ユーザーの初期登録]またはパスワード変更で、ご自身のパスワードを"
    "設定してください。"
)
CHANGE_DONE = "パスワードを変更しました。次回から新しいパスワードをご利用ください。"
NEW_PASSWORDS_DIFFER = "新しいパスワードと確認用パスワードが一致しません。"
CODE_RESENT = "認証コードを再送しました。新しい認証コードを入力してください。"

CA_REFUSALS: Mapping[ErrorReason, Message] = {
    ErrorReason.INVALID_CREDENTIALS: _says(_WRONG_CREDENTIALS),
    ErrorReason.LOCKED: _locked,
    ErrorReason.BLOCKED: _says(_BLOCKED),
    ErrorReason.ALREADY_ISSUED: _already_issued,
    ErrorReason.CODE_INVALID: _code_invalid,
    ErrorReason.CODE_EXPIRED: _code_expired,
    ErrorReason.TICKET_INVALID: _says("認証の有効期限が切れました。" + _START_AGAIN),
    ErrorReason.INVALID_USER_ID: _user_id_rule,
    ErrorReason.INVALID_PASSWORD: _password_rule,
    ErrorReason.INVALID_EMAIL: _says("メールアドレスが正しくありません。"),
    ErrorReason.ALREADY_EXISTS: _says(_USER_ID_TAKEN),
    ErrorReason.USER_EXISTS: _says(_USER_ID_TAKEN),
    ErrorReason.PERMISSION_DENIED: _says("この操作は許可されていません。"),
    ErrorReason.USER_NOT_FOUND: _says("指定されたユーザーが見つかりません。"),
    ErrorReason.EMAIL_UNCHANGED: _says(
        "入力されたメールアドレスは、現在登録されているメールアドレスと同じです。"
    ),
    ErrorReason.EMAIL_LINK_EXPIRED: _link_expired,
    ErrorReason.EMAIL_LINK_USED: _says(
        "このURLは既に使用されています（URLは一度だけ有効です）。"
        "メール認証は完了している可能性があります。"
    ),
    ErrorReason.EMAIL_LINK_UNKNOWN: _says(
        "URLが正しくありません。メールに記載されたURLを、途中で切れないように"
        "すべてコピーしてアクセスしてください。"
    ),
    # Issue 11: password change, resending the code, a master user's revocations.
    ErrorReason.PASSWORD_CHANGE_REQUIRED: _says(CHOOSE_YOUR_OWN),
    ErrorReason.PASSWORD_UNCHANGED: _says(
        "新しいパスワードには、現在のパスワードと異なるものを指定してください。"
    ),
    ErrorReason.RESEND_LIMITED: _resend_limited,
    ErrorReason.CERTIFICATE_NOT_FOUND: _says("失効できる有効な電子証明書がありません。"),
    ErrorReason.INVALID_REASON: _says("失効の理由を選択してください。"),
}


def for_ca_reason(reason: ErrorReason, metadata: Mapping[str, str], rules: Rules) -> str:
    """The screen's message for a refusal of the CA (google.rpc.ErrorInfo)."""
    message = CA_REFUSALS.get(reason)
    return _GENERAL if message is None else message(metadata, rules)


# -- the gateway's refusals of a client certificate ------------------------------------------


def refusal_status(refusal: Refusal) -> int:
    """403 for a certificate that is refused; 503 while its status cannot be confirmed; 401
    when a card route got no certificate."""
    if refusal in (Refusal.STALE, Refusal.CARD_STALE):
        return 503
    return 401 if refusal is Refusal.CARD_NEEDED else 403


_CARD_CERTIFICATE = "マイナンバーカードの署名用電子証明書"
_CARD_REFUSALS = frozenset(
    {
        Refusal.CARD_NEEDED,
        Refusal.NOT_A_CARD,
        Refusal.OUR_CERTIFICATE_ON_CARD_ROUTE,
        Refusal.CARD_NOT_YET_VALID,
        Refusal.CARD_EXPIRED,
        Refusal.CARD_NOT_FOR_SIGNING,
        Refusal.CARD_ATTRIBUTES_MISSING,
        Refusal.CARD_REVOKED,
        Refusal.CARD_STALE,
    }
)


_REFUSALS: Mapping[Refusal, Callable[[Rules], str]] = {
    Refusal.MALFORMED: lambda _: "電子証明書を読み取れません。",
    Refusal.NOT_OURS: lambda _: "この電子証明書は本サービスが発行したものではありません。",
    Refusal.NOT_YET_VALID: lambda _: "電子証明書の有効期間がまだ始まっていません。",
    Refusal.EXPIRED: lambda _: (
        "電子証明書の有効期限が切れています。[電子証明書発行]から再発行してください。"
    ),
    Refusal.NO_CLIENT_AUTH: lambda _: "この電子証明書はログインには使えません。",
    Refusal.REVOKED: lambda _: (
        "この電子証明書は失効しています。新しい電子証明書を発行してログインしてください。"
    ),
    Refusal.STALE: lambda _: (
        "電子証明書の失効状況を確認できないため、現在ログインできません。"
        "しばらくしてからもう一度お試しください。"
    ),
    Refusal.UNKNOWN_USER: lambda _: "この電子証明書のユーザーIDは登録されていません。",
    Refusal.LOCKED: lambda rules: (
        "このユーザーIDはパスワードの連続誤りによりロックされています。"
        f"{duration_text(rules.lock_duration)}経過後にもう一度お試しください。"
    ),
    Refusal.BLOCKED: lambda _: _BLOCKED,
    Refusal.CARD_ON_USER_ROUTE: lambda _: (
        f"{_CARD_CERTIFICATE}ではログインできません。"
        "本サービスが発行した電子証明書を選択してください。"
    ),
    Refusal.CARD_NEEDED: lambda _: (
        f"この手続きには{_CARD_CERTIFICATE}が必要です。"
        "カードをカードリーダーにセットし、ブラウザーを再起動してから"
        "もう一度アクセスして電子証明書を選択してください。"
    ),
    Refusal.NOT_A_CARD: lambda _: (
        f"この電子証明書は{_CARD_CERTIFICATE}ではありません。"
        f"{_CARD_CERTIFICATE}を選択してください。"
    ),
    Refusal.OUR_CERTIFICATE_ON_CARD_ROUTE: lambda _: (
        "本サービスが発行した電子証明書はこの手続きには使えません。"
        f"{_CARD_CERTIFICATE}を選択してください。"
    ),
    Refusal.CARD_NOT_YET_VALID: lambda _: f"{_CARD_CERTIFICATE}の有効期間がまだ始まっていません。",
    Refusal.CARD_EXPIRED: lambda _: (
        f"{_CARD_CERTIFICATE}の有効期限が切れています。お住まいの市区町村の窓口で更新してください。"
    ),
    Refusal.CARD_NOT_FOR_SIGNING: lambda _: (
        f"この電子証明書は{_CARD_CERTIFICATE}として使えません。"
    ),
    Refusal.CARD_ATTRIBUTES_MISSING: lambda _: (
        "この電子証明書から氏名・住所・生年月日・性別を読み取れません。"
    ),
    Refusal.CARD_REVOKED: lambda _: (
        f"この{_CARD_CERTIFICATE}は失効しています。お住まいの市区町村の窓口にお問い合わせください。"
    ),
    Refusal.CARD_STALE: lambda _: (
        f"{_CARD_CERTIFICATE}の失効状況を確認できないため、現在この手続きはご利用いただけません。"
        "しばらくしてからもう一度お試しください。"
    ),
}


def refusal_message(refusal: Refusal, rules: Rules) -> tuple[str, str]:
    """(heading, message) for a client certificate the gateway refuses."""
    heading = "本人確認できません" if refusal in _CARD_REFUSALS else "ログインできません"
    return heading, _REFUSALS[refusal](rules)
