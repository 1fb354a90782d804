"""The end of a lock (SPEC B3) reads the same minute in the lock mail, in the screen's
refusal and on the master user's page: all three go through ``format_lock_end``. Pure; the
same with a real CA and SMTP server is in test_screens_demo.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ca_service.adapters.mail import templates
from ca_service.api import ErrorReason
from ca_service.shared.japan import JAPAN, format_lock_end
from gateway.accounts import UserState
from gateway.web.master import state_label
from gateway.web.messages import for_ca_reason
from tests.gateway.rules import RULES


@pytest.mark.parametrize(
    "until",
    [
        datetime(2026, 12, 3, 13, 21, 0, 400_000, tzinfo=UTC),  # 22:21:00.4 in Japan
        datetime(2026, 12, 3, 13, 21, tzinfo=UTC),  # on the minute
        datetime(2026, 12, 31, 14, 59, 59, tzinfo=UTC),  # across the year
    ],
)
def test_mail_screen_and_master_page_name_the_same_minute(until: datetime) -> None:
    shown = format_lock_end(until)
    assert shown.startswith(("2026年", "2027年"))
    _, body = templates.locked("ippan201", until)
    assert f"ロック状態は{shown}に自動的に解除" in body
    screen = for_ca_reason(ErrorReason.LOCKED, {"locked_until": until.isoformat()}, RULES)
    assert f"ロックは{shown}（日本時間）に解除されます" in screen
    assert state_label(UserState.LOCKED, until) == f"ロック中（{shown} 解除）"
    # The minute named is the first at which the lock has lifted.
    named = datetime.strptime(shown, "%Y年%m月%d日 %H:%M").replace(tzinfo=JAPAN)
    assert until <= named < until + timedelta(minutes=1)
