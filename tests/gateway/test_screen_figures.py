"""The rule figures on the screens (6 wrong passwords, 60 minutes, 3 locks, 30 minutes,
366 days, the 30-day renewal window, the lengths of user IDs, passwords and codes) come
from the CA's GetRules: the templates and the screens' words hold no copy of them, and the
rendered screens say what the CA reports."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.accounts import Rules
from gateway.web.pages import Pages
from tests.gateway.rules import OTHER_RULES, RULES

WEB = Path(__file__).resolve().parents[2] / "gateway" / "web"
TEMPLATES = sorted((WEB / "templates").glob("*.html"))
MODULES = sorted(WEB.glob("*.py"))

# A number followed by a unit of the rules (times, minutes, seconds, days, digits, hours)
# or by the "to" of a range (6～12); an input's length or a regex quantifier.
FIGURE = re.compile(r"[0-9０-９]+\s*(?:回|分|秒|日|桁|時間|～|〜|~)")
ATTRIBUTE = re.compile(r'(?:maxlength|minlength|size)="[0-9]+"|\{[0-9]+(?:,[0-9]*)?\}')


def _copies(text: str) -> list[str]:
    return FIGURE.findall(text) + ATTRIBUTE.findall(text)


def _strings(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module (f-strings' literal parts included)."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_the_check_finds_copies() -> None:
    assert _copies("連続して6回、60分間、366日間、6～12桁、30日前、有効期限30分") == [
        "6回",
        "60分",
        "366日",
        "6～",
        "12桁",
        "30日",
        "30分",
    ]
    assert _copies('pattern="[0-9]{6}" maxlength="6"') == ["{6}", 'maxlength="6"']
    assert _copies("{{ rules.failures_to_lock }}回、あと{tries}回、1文字以上、4種必須") == []


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_hold_no_copy_of_a_figure(path: Path) -> None:
    assert _copies(path.read_text()) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_the_screens_words_hold_no_copy_of_a_figure(path: Path) -> None:
    found = [(line, copy) for line, text in _strings(path) for copy in _copies(text)]
    assert found == []


# What each template needs besides the rules, and the figures it shows.
_SCREENS: dict[str, dict[str, Any]] = {
    "enroll_auth.html": {"general": False, "user_id": ""},
    "enroll_code.html": {"masked_email": "t***@example.jp", "code_expires_at": "12:00"},
    "enroll_issue.html": {"user_id": "taro0001", "renewal": False},
    "login_menu.html": {"certificate_user": None},
    "master_users.html": {
        "organization_name": "",
        "organization_id": "ORG00001",
        "users": [],
        "created": SimpleNamespace(user_id="x", initial_password="y"),
        "reset": SimpleNamespace(user_id="x", initial_password="y"),
    },
    "account_password.html": {"user_id": "", "user_fixed": False, "back_url": "/login"},
    "register_master_account.html": {"organization_id": "ORG00001", "organization_name": None},
    "account_email.html": {"current_email": "taro0001@example.jp"},
    "email_verify_result.html": {"verified": False, "heading": "h", "message": "m"},
}


def _render(rules: Rules) -> dict[str, str]:
    pages = Pages("電子証明書サービス", rules)
    return {
        name: pages.render(name, csrf="t", **context).body.decode()
        for name, context in _SCREENS.items()
    }


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            RULES,
            {
                "enroll_auth.html": [
                    "連続して6回間違えた場合は、60分間ログイン不可",
                    "60分経過後に解除され",
                    "ロックを3回繰り返した場合",
                    "有効期限が切れる30日前より",
                    "6～12桁で入力します",
                    "8～12桁で入力します",
                ],
                "register_master_account.html": ["6～12桁で入力します", "8～12桁で入力します"],
                "master_users.html": ["6～12桁で入力します", "切れる30日前から更新できます"],
                "enroll_code.html": [
                    'pattern="[0-9]{6}" maxlength="6"',
                    "半角数字6桁で、有効期限は送信から30分です",
                    "（数字のみ、有効期限30分）",
                    "前回の送信から1分以上あけて、30分に5回まで",
                ],
                "account_password.html": ["8～12桁で入力します", "連続して6回間違えた場合は"],
                "enroll_issue.html": ["発行日を含めて366日間"],
                "login_menu.html": ["366日間です。有効期限が切れる30日前から更新できます"],
                "account_email.html": ["URLへ24時間以内にアクセスすると"],
                "email_verify_result.html": ["URLの有効期限は24時間です"],
            },
        ),
        (
            OTHER_RULES,
            {
                "enroll_auth.html": [
                    "連続して5回間違えた場合は、20分間ログイン不可",
                    "20分経過後に解除され",
                    "ロックを4回繰り返した場合",
                    "有効期限が切れる14日前より",
                    "4～16桁で入力します",
                    "10～32桁で入力します",
                ],
                "register_master_account.html": ["4～16桁で入力します", "10～32桁で入力します"],
                "master_users.html": ["4～16桁で入力します", "切れる14日前から更新できます"],
                "enroll_code.html": [
                    'pattern="[0-9]{8}" maxlength="8"',
                    "半角数字8桁で、有効期限は送信から90秒です",
                    "（数字のみ、有効期限90秒）",
                    "前回の送信から2分以上あけて、45分に7回まで",
                ],
                "account_password.html": ["10～32桁で入力します", "連続して5回間違えた場合は"],
                "enroll_issue.html": ["発行日を含めて397日間"],
                "login_menu.html": ["397日間です。有効期限が切れる14日前から更新できます"],
                "account_email.html": ["URLへ48時間以内にアクセスすると"],
                "email_verify_result.html": ["URLの有効期限は48時間です"],
            },
        ),
    ],
    ids=["spec", "other"],
)
def test_the_screens_say_the_figures_the_ca_reports(
    rules: Rules, expected: dict[str, list[str]]
) -> None:
    pages = _render(rules)
    assert [
        (name, phrase)
        for name, phrases in expected.items()
        for phrase in phrases
        if phrase not in pages[name]
    ] == []


def test_with_other_rules_no_screen_says_specs_figures() -> None:
    for name, page in _render(OTHER_RULES).items():
        found = re.findall(r"(?<![0-9])(?:6回|60分|3回|30分|366日|30日|6～12|8～12|24時間)", page)
        assert found == [], name


def test_a_ca_answer_without_every_figure_is_refused() -> None:
    with pytest.raises(ValueError, match="lock_duration"):
        replace(RULES, lock_duration=timedelta(0))
    with pytest.raises(ValueError, match="code_digits"):
        replace(RULES, code_digits=0)
