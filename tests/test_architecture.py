"""Dependencies point inwards: domain/ and pki/ do no I/O and never read the clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ca_service"
PURE = sorted((PACKAGE / "domain").rglob("*.py")) + sorted((PACKAGE / "pki").rglob("*.py"))
FORBIDDEN_MODULES = {
    "grpc",
    "redis",
    "sqlite3",
    "psycopg",
    "aiosmtplib",
    "asyncio",
    "socket",
    "subprocess",
    "os",
    "time",
    "ca_service.adapters",
    "ca_service.services",
    "ca_service.app",
    "ca_service.config",
}
CLOCK_READS = {"now", "utcnow", "today", "time", "monotonic"}


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_module_has_no_io_and_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert not any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES), (
                f"{path.name} imports {name}"
            )
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in CLOCK_READS, f"{path.name}:{node.lineno} reads the clock"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open", f"{path.name}:{node.lineno} opens a file"
