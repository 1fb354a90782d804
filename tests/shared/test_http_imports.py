"""The HTTP core and the connection admission live in the shared package, which the CA and
the gateway both use: they import nothing of ``ca_service`` outside ``ca_service.shared``,
and nothing of the gateway."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "ca_service" / "shared"
MODULES = sorted([*(SHARED / "http").glob("*.py"), *(SHARED / "net").glob("*.py")])


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_shared_modules_import_only_the_shared_package(path: Path) -> None:
    outside = {
        name
        for name in _imported(path)
        if (name.startswith("ca_service") and not name.startswith("ca_service.shared"))
        or name.startswith("gateway")
    }
    assert not outside, f"{path.name} imports {sorted(outside)}"
