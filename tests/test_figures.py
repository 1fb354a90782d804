"""The rule figures (6 wrong passwords, 60 minutes, 3 locks, 30-minute codes, 5 tries,
366 days, the 30-day renewal window, …) live in ``ca_service/domain`` only. Mails,
messages, help texts and the Redis script take them from there, so a change of a rule is
one edit; these tests keep literal copies from coming back."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ca_service.adapters.redis import lockout as redis_lockout
from ca_service.domain.lockout import Event

PACKAGE = Path(__file__).resolve().parents[1] / "ca_service"
# Where words meet users or operators: mails, error messages, help texts, settings.
SCANNED = sorted(
    path
    for path in PACKAGE.rglob("*.py")
    if "api" not in path.relative_to(PACKAGE).parts  # generated code
)
# A number followed by a unit of the rules, in Japanese or English.
FIGURE = re.compile(
    r"(?<![\d.:/\-月])\d+\s*(?:日間|日前|日|分間|分|回|桁|時間"
    r"|days?\b|minutes?\b|hours?\b|consecutive\b|wrong\b|tries\b|locks?\b|digits?\b)"
)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _texts(path: Path) -> Iterator[tuple[int, str]]:
    """The string literals of a module (literal parts of f-strings too), not docstrings."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in docstrings:
            continue
        if isinstance(node.value, str):
            yield node.lineno, node.value


def test_the_pattern_finds_what_it_must() -> None:
    for literal in ("366日間", "半角数字6桁", "6 consecutive", "30 days before", "60分間"):
        assert FIGURE.search(literal), literal
    for fine in ("2027年11月21日 23:59", "SHA-256", "RFC 5280", "P-256", "0/1"):
        assert not FIGURE.search(fine), fine


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_literal_rule_figure(path: Path) -> None:
    found = [
        f"{path.name}:{line}: {match.group(0)!r}"
        for line, text in _texts(path)
        for match in FIGURE.finditer(text)
    ]
    assert not found, "take the figure from ca_service.domain: " + "; ".join(found)


def test_the_lockout_script_takes_its_figures_and_events_from_the_domain() -> None:
    script = redis_lockout._TRANSITION
    # Array indexes (ARGV[4], h[2]) and the microsecond arithmetic are no rule figures.
    without_indexes = re.sub(r"\[\d+\]", "[]", script)
    numbers = {int(n) for n in re.findall(r"(?<![\w.])\d+(?![\w.])", without_indexes)}
    assert numbers <= {0, 1, 999_999, 1_000_000}, numbers
    for name in ("failures_to_lock", "locks_to_block", "lock_s"):
        assert f"local {name} = tonumber(ARGV[" in script
    assert {event.value for event in Event} == set(re.findall(r"event [=~]= '(\w+)'", script))
    assert "$" not in script  # every placeholder was filled
