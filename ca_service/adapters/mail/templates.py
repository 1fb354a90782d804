"""The Japanese e-mails of the service, as pure functions returning ``(subject, body)``.

Plain text in the polite business style of the user manual (seed 000). Every instant is
shown in Japan time as ``2027年11月21日 23:59``. Nothing secret goes into a subject: the
outbox keeps subjects for ``ca-admin mail list`` but redacts the body of a code mail.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ca_service.domain.codes import CODE_TTL, code_problem
from ca_service.domain.lockout import FAILURES_TO_LOCK, LOCK_DURATION, LOCKS_TO_BLOCK
from ca_service.domain.validity import JAPAN, RENEWAL_WINDOW_DAYS

__all__ = [
    "authentication_code",
    "blocked",
    "expiry_notice",
    "format_japan_time",
    "locked",
    "renewal_notice",
    "unlocked",
]

# (subject, body)
Rendered = tuple[str, str]

_MINUTE = timedelta(minutes=1)

_FOOTER = (
    "※本メールは送信専用アドレスから送信しています。"
    "ご返信いただいてもお答えできませんので、あらかじめご了承ください。"
)


def format_japan_time(instant: datetime, *, round_up: bool = False) -> str:
    """``instant`` in Japan time to the minute, e.g. ``2027年11月21日 23:59``.

    Seconds are dropped (a notAfter of 23:59:59 reads 23:59) unless ``round_up``, which a
    "you may try again at" time needs so that it is never earlier than the real instant.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant must be timezone-aware, got naive {instant!r}")
    local = instant.astimezone(JAPAN)
    floored = local.replace(second=0, microsecond=0)
    if round_up and floored != local:
        floored += _MINUTE
    return f"{floored.year}年{floored.month}月{floored.day}日 {floored:%H:%M}"


def _minutes(duration: timedelta) -> int:
    return int(duration.total_seconds()) // 60


def _compose(user_id: str, *paragraphs: str) -> str:
    return "\n\n".join((f"{user_id} 様", *paragraphs, _FOOTER)) + "\n"


def authentication_code(user_id: str, code: str, expires_at: datetime) -> Rendered:
    """The one-time authentication code of SPEC B1/B2, valid for 30 minutes."""
    problem = code_problem(code)
    if problem is not None:
        raise ValueError(problem)
    # Round down: telling the user a later deadline than the real one would be wrong.
    until = format_japan_time(expires_at)
    subject = "【電子証明書発行】認証コードのお知らせ"
    body = _compose(
        user_id,
        "電子証明書発行のユーザー認証を受け付けました。\n"
        "「認証コード入力」画面で、次の認証コード（半角数字6桁）を入力してください。",
        f"認証コード：{code}",
        f"認証コードの有効期限は{_minutes(CODE_TTL)}分間です（{until}まで）。\n"
        "有効期限を過ぎた場合は、お手数ですがユーザー認証からやり直してください。",
        "このメールにお心当たりのない場合は、本メールを破棄してください。"
        "認証コードは入力されない限り使用されません。\n"
        "なお、認証コードはユーザーIDとパスワードによる認証の後に送信されます。"
        "パスワードが第三者に知られたおそれがある場合は、パスワードの変更をお願いいたします。",
    )
    return subject, body


def locked(user_id: str, unlocks_at: datetime) -> Rendered:
    """SPEC B3/B5: six consecutive wrong passwords locked the user ID for 60 minutes."""
    # Round up: the lock must really have lifted at the time we name.
    until = format_japan_time(unlocks_at, round_up=True)
    subject = "【重要】ユーザーIDのロックのお知らせ"
    body = _compose(
        user_id,
        f"パスワードを連続して{FAILURES_TO_LOCK}回間違えたため、ユーザーID「{user_id}」は"
        f"{_minutes(LOCK_DURATION)}分間ログイン不可（ロック）となりました。",
        f"ロック状態は{until}に自動的に解除され、再度ログイン操作が可能になります。\n"
        f"なお、ロックを{LOCKS_TO_BLOCK}回繰り返した場合にはログイン不可（閉塞）となり、"
        "ユーザーIDは認証できなくなりますのでご注意ください。",
        "お心当たりのない場合は、第三者による不正なログインの試みの可能性があります。"
        "マスターユーザーまたはヘルプデスクまでご相談ください。",
    )
    return subject, body


def blocked(user_id: str, is_master: bool) -> Rendered:
    """SPEC B4/B5/B6: the third lock blocked the user ID (閉塞); who can lift it."""
    if is_master:
        contact = (
            "マスターユーザーの閉塞状態の解除は、サービス運営者のヘルプデスクまで"
            "お問い合わせください。"
        )
    else:
        contact = (
            "閉塞状態の解除は、所属団体のマスターユーザーにお問い合わせください。\n"
            "（マスターユーザーは一般ユーザーのロック・閉塞状態を解除できます。）"
        )
    subject = "【重要】ユーザーIDの閉塞のお知らせ"
    body = _compose(
        user_id,
        f"ロックを{LOCKS_TO_BLOCK}回繰り返したため、ユーザーID「{user_id}」は"
        "ログイン不可（閉塞）となりました。\n"
        "閉塞状態のユーザーIDは、解除されるまで認証を行うことができません。",
        contact,
    )
    return subject, body


def unlocked(user_id: str) -> Rendered:
    """SPEC B6: a master user or the operator lifted the lock or block."""
    subject = "ユーザーIDのロック・閉塞解除のお知らせ"
    body = _compose(
        user_id,
        f"ユーザーID「{user_id}」のロック・閉塞状態を解除いたしました。\n"
        "再度ログイン操作が可能です。",
        "お心当たりのない場合は、マスターユーザーまたはヘルプデスクまでご連絡ください。",
    )
    return subject, body


def renewal_notice(user_id: str, not_after: datetime) -> Rendered:
    """SPEC C3: the certificate expires in 30 days; renewal (電子証明書の更新) is open."""
    expires = format_japan_time(not_after)
    subject = "【電子証明書】有効期限が近づいています（更新のお願い）"
    body = _compose(
        user_id,
        f"ご利用中の電子証明書の有効期限は{expires}です。\n"
        "有効期限が過ぎると本システムへのログインができなくなります。",
        f"電子証明書の更新は、有効期限が切れる{RENEWAL_WINDOW_DAYS}日前から可能です。\n"
        "ログイン画面の［電子証明書発行］ボタンから、電子証明書の更新を行ってください。\n"
        "更新後は新しい電子証明書を選択してログインしてください。",
    )
    return subject, body


def expiry_notice(user_id: str, not_after: datetime) -> Rendered:
    """SPEC C3: the certificate has expired; re-issue it to log in again."""
    expired = format_japan_time(not_after)
    subject = "【電子証明書】有効期限切れのお知らせ"
    body = _compose(
        user_id,
        f"ご利用の電子証明書は、{expired}をもって有効期限が切れました。\n"
        "有効期限が切れた電子証明書では、本システムへのログインができません。",
        "ログイン画面の［電子証明書発行］ボタンから電子証明書を再発行していただくことで、"
        "再び本システムへのログインが可能になります。",
    )
    return subject, body
