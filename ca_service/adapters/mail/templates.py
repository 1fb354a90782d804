"""The Japanese e-mails of the service, as pure functions returning ``(subject, body)``.

Plain text in the polite business style of the user manual (seed 000). Every instant is
shown in Japan time as ``2027年11月21日 23:59``. Nothing secret goes into a subject: the
outbox keeps subjects for ``ca-admin mail list`` but redacts the body of a code mail.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ca_service.domain.accounts import mask_email
from ca_service.domain.codes import CODE_DIGITS, CODE_TTL, code_problem
from ca_service.domain.lockout import FAILURES_TO_LOCK, LOCK_DURATION, LOCKS_TO_BLOCK
from ca_service.domain.rules import EMAIL_LINK_TTL
from ca_service.domain.validity import RENEWAL_WINDOW_DAYS
from ca_service.shared.japan import format_japan_time, format_lock_end

__all__ = [
    "CODE_LINE",
    "authentication_code",
    "blocked",
    "email_changed",
    "email_verification",
    "expiry_notice",
    "format_japan_time",
    "locked",
    "procedure_completion",
    "renewal_notice",
    "unlocked",
]

# (subject, body)
Rendered = tuple[str, str]


# How the code mail names the code: ``認証コード：123456`` on a line of its own (the demo's
# mail sink finds the code by it).
CODE_LINE = "認証コード："

_FOOTER = (
    "※本メールは送信専用アドレスから送信しています。"
    "ご返信いただいてもお答えできませんので、あらかじめご了承ください。"
)


def _minutes(duration: timedelta) -> int:
    return int(duration.total_seconds()) // 60


def _hours(duration: timedelta) -> int:
    return int(duration.total_seconds()) // 3600


def _compose(user_id: str, *paragraphs: str) -> str:
    return "\n\n".join((f"{user_id} 様", *paragraphs, _FOOTER)) + "\n"


def authentication_code(user_id: str, code: str, expires_at: datetime) -> Rendered:
    """The one-time authentication code of SPEC B1/B2, valid for ``CODE_TTL``."""
    problem = code_problem(code)
    if problem is not None:
        raise ValueError(problem)
    # Round down: telling the user a later deadline than the real one would be wrong.
    until = format_japan_time(expires_at)
    subject = "【電子証明書発行】認証コードのお知らせ"
    body = _compose(
        user_id,
        "電子証明書発行のユーザー認証を受け付けました。\n"
        f"「認証コード入力」画面で、次の認証コード（半角数字{CODE_DIGITS}桁）を入力してください。",
        f"{CODE_LINE}{code}",
        f"認証コードの有効期限は{_minutes(CODE_TTL)}分間です（{until}まで）。\n"
        "有効期限を過ぎた場合は、お手数ですがユーザー認証からやり直してください。",
        "このメールにお心当たりのない場合は、本メールを破棄してください。"
        "認証コードは入力されない限り使用されません。\n"
        "なお、認証コードはユーザーIDとパスワードによる認証の後に送信されます。"
        "パスワードが第三者に知られたおそれがある場合は、パスワードの変更をお願いいたします。",
    )
    return subject, body


def locked(user_id: str, unlocks_at: datetime) -> Rendered:
    """SPEC B3/B5: ``FAILURES_TO_LOCK`` consecutive wrong passwords locked the user ID for
    ``LOCK_DURATION``."""
    until = format_lock_end(unlocks_at)
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
    """SPEC C3: the certificate expires in ``RENEWAL_WINDOW_DAYS`` days; renewal
    (電子証明書の更新) is open."""
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


# The procedure portal's mails (seed 004) name the portal, not the certificate service.
_PORTAL_TAG = "【オンライン手続きポータル】"
_PORTAL_FOOTER = (
    "本メールは、オンライン手続きポータルをご利用された方へ配信しています。\n"
    "このメールへの返信はできませんのでご了承ください。"
)


def email_verification(user_id: str | None, link: str, expires_at: datetime) -> Rendered:
    """SPEC D1 (seed 004 「メール認証URLのご案内」): open ``link`` within ``EMAIL_LINK_TTL``.
    ``user_id`` names a CA user changing its address; None is the procedure portal's
    registration. The link is the secret: it goes into the body only."""
    hours = _hours(EMAIL_LINK_TTL)
    until = format_japan_time(expires_at)
    instructions = (
        f"下記のURLへ「{hours}時間以内」（{until}まで）にアクセスし、"
        "メール認証を完了させてください。",
        link,
        f"{hours}時間を超過すると、URLのリンク先ページは無効となりますのでご注意ください。\n"
        "URLは一度だけ有効です。有効期限が切れた場合は、お手数ですが再度お手続きください。",
        "このメールにお心当たりのない場合は、本メールを破棄してください。"
        "URLにアクセスしない限り、メールアドレスは登録されません。",
    )
    if user_id is None:
        subject = f"{_PORTAL_TAG}メール認証URLのご案内"
        body = (
            "\n\n".join(
                ("ご利用いただきまして誠にありがとうございます。", *instructions, _PORTAL_FOOTER)
            )
            + "\n"
        )
        return subject, body
    subject = "【電子証明書】メールアドレス変更 メール認証URLのご案内"
    body = _compose(
        user_id,
        f"ユーザーID「{user_id}」の登録メールアドレスを、このメールアドレスに変更する"
        "お手続きを受け付けました。",
        *instructions[:2],
        "メール認証が完了するまでは、変更前のメールアドレスが引き続き使用されます。\n"
        + instructions[2],
        instructions[3].replace("登録されません", "変更されません"),
    )
    return subject, body


def email_changed(user_id: str, new_address: str, changed_at: datetime) -> Rendered:
    """SPEC D1: to the old address, after the new one was verified (the address is
    masked: the old owner need not learn it in full)."""
    subject = "【重要】登録メールアドレス変更のお知らせ"
    body = _compose(
        user_id,
        f"ユーザーID「{user_id}」の登録メールアドレスは、{format_japan_time(changed_at)}に"
        f"変更されました（変更後：{mask_email(new_address)}）。\n"
        "今後のお知らせは変更後のメールアドレスにお送りします。",
        "お心当たりのない場合は、第三者による不正な操作の可能性があります。"
        "至急、マスターユーザーまたはヘルプデスクまでご連絡ください。",
    )
    return subject, body


def procedure_completion(receipt_number: str, submitted_at: datetime) -> Rendered:
    """Seed 004 「オンライン申請受付完了のお知らせ」, quoting the receipt number."""
    subject = f"{_PORTAL_TAG}オンライン申請受付完了のお知らせ"
    rule = "=" * 40
    body = (
        "\n\n".join(
            (
                "オンライン申請の受付が完了いたしましたので下記受付番号をお伝えします。\n"
                "申請内容について担当よりご連絡を差し上げることもありますので"
                "よろしくお願いいたします。",
                f"{rule}\n受付番号：{receipt_number}\n"
                f"受付日時：{format_japan_time(submitted_at)}\n{rule}",
                _PORTAL_FOOTER
                + "\nもし、心当たりがない場合は、お問い合わせ窓口までご連絡ください。",
            )
        )
        + "\n"
    )
    return subject, body
