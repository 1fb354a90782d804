"""Dependencies point inwards: domain/ and pki/ do no I/O and never read the clock;
services/ depend on ports only, never on an adapter, a driver or the wiring; the gateway
uses of ca_service only the generated API, the client and ca_service/shared/, which imports
nothing else of ca_service; the gateway decides by the clock it is given."""

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


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _forbidden(path: Path, modules: set[str]) -> list[str]:
    return [
        name
        for name in _imports(path)
        if any(name == m or name.startswith(m + ".") for m in modules)
    ]


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_module_has_no_io_and_no_clock(path: Path) -> None:
    assert not _forbidden(path, FORBIDDEN_MODULES), path.name
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in CLOCK_READS, f"{path.name}:{node.lineno} reads the clock"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open", f"{path.name}:{node.lineno} opens a file"


SERVICES = sorted((PACKAGE / "services").rglob("*.py"))
# What a service may not import: it reaches stores, Redis, mail and the network through
# the protocols of ca_service.ports, which app.py satisfies with adapters.
SERVICE_FORBIDDEN = {
    "ca_service.adapters",
    "ca_service.app",
    "ca_service.config",
    "redis",
    "psycopg",
    "sqlite3",
    "grpc",
    "aiosmtplib",
    "socket",
}


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_service_depends_on_ports_only(path: Path) -> None:
    assert not _forbidden(path, SERVICE_FORBIDDEN), path.name


def test_the_service_rule_sees_what_it_forbids() -> None:
    """The check reads real import statements (a rule that sees nothing passes vacuously)."""
    assert _forbidden(PACKAGE / "app.py", SERVICE_FORBIDDEN)
    assert len(SERVICES) >= 10


def test_every_ca_admin_command_has_one_handler() -> None:
    """ca-admin dispatches through a table: each GROUP ACTION the parser accepts has a
    handler, and the table names nothing the parser does not accept."""
    import argparse

    from ca_service.cli import admin

    def actions(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(subparsers.choices)

    accepted = {
        (group, action)
        for group, group_parser in actions(admin._parser()).items()
        for action in actions(group_parser)
    }
    assert accepted == set(admin._COMMANDS)


ROOT = PACKAGE.parent
GATEWAY = sorted((ROOT / "gateway").rglob("*.py"))
SHARED = sorted((PACKAGE / "shared").rglob("*.py"))
# What the gateway may use of ca_service: the generated API, the client and the shared
# package; nothing else, so that it can ship and scale on its own.
GATEWAY_MAY_USE = ("ca_service.api", "ca_service.client", "ca_service.shared")


def _imports_by_line(path: Path) -> list[tuple[int, tuple[str, ...]]]:
    """Every name ``path`` imports, as (line, the modules it may be): ``from a import b``
    imports ``a.b`` when b is a module, else a name of ``a``."""
    found: list[tuple[int, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, (alias.name,)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: a relative import"
            base = node.module or ""
            found += [(node.lineno, (base, f"{base}.{alias.name}")) for alias in node.names]
    return found


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _offending(path: Path, inside: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    """The imports of modules in ``inside`` that are not in ``allowed``."""
    return [
        f"{path.name}:{line} imports {candidates[-1]}"
        for line, candidates in _imports_by_line(path)
        if any(_within(module, inside) for module in candidates)
        and not any(_within(module, allowed) for module in candidates)
    ]


# The procedure portal (gateway/portal) is an SQL application, like the CA: it uses the CA's
# one SQL adapter (both dialects, group commit, reconnects, migrations) rather than a copy,
# and that adapter's errors. It still uses nothing that holds the CA's own rules or state.
PORTAL = ROOT / "gateway" / "portal"
PORTAL_MAY_ALSO_USE = (
    "ca_service.adapters.sql.database",
    "ca_service.adapters.sql.migrations",
    "ca_service.errors",
)


def _allowed(path: Path) -> tuple[str, ...]:
    return GATEWAY_MAY_USE + (PORTAL_MAY_ALSO_USE if path.is_relative_to(PORTAL) else ())


@pytest.mark.parametrize("path", GATEWAY, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_gateway_uses_only_the_api_the_client_and_the_shared_package(path: Path) -> None:
    assert _offending(path, ("ca_service",), _allowed(path)) == []


def test_only_the_portal_may_use_the_sql_adapter() -> None:
    assert _allowed(ROOT / "gateway" / "app.py") == GATEWAY_MAY_USE
    assert _offending(PORTAL / "store.py", ("ca_service",), GATEWAY_MAY_USE)
    assert _offending(PORTAL / "store.py", ("ca_service",), _allowed(PORTAL / "store.py")) == []


@pytest.mark.parametrize("path", SHARED, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_shared_package_imports_nothing_else_of_ca_service(path: Path) -> None:
    assert _offending(path, ("ca_service", "gateway"), ("ca_service.shared",)) == []


def test_the_line_checks_catch_what_they_are_meant_to(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from ca_service import config\n"
        "import ca_service.domain.validity\n"
        "from ca_service.adapters.redis.client import connect\n"
        "from ca_service import api\n"
        "from ca_service.shared.clock import SystemClock\n"
        "import ca_service.client\n"
    )
    found = _offending(probe, ("ca_service",), GATEWAY_MAY_USE)
    assert [line.split(" imports ")[1] for line in found] == [
        "ca_service.config",
        "ca_service.domain.validity",
        "ca_service.adapters.redis.client.connect",
    ]


# Reads of the time of day: datetime.now()/utcnow()/today(), time.time()/time_ns().
WALL_CLOCK_READS = {"now", "utcnow", "today", "time", "time_ns"}
# The wiring passes the real clock in. The HTTP/1.1 stack (server, parser, proxy, CRL
# fallback) is being replaced by the shared core of issue 10 item 1; until then its Date
# header and the CRL fallback's nextUpdate check read the clock themselves.
CLOCK_READERS = {"cli.py", "server.py", "http1.py", "proxy.py", "crl_fallback.py"}


def _clock_reads(path: Path) -> list[str]:
    return [
        f"{path.name}:{node.lineno} {node.func.value.id}.{node.func.attr}()"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in {"datetime", "date", "time"}
        and node.func.attr in WALL_CLOCK_READS | {"monotonic"}
    ]


@pytest.mark.parametrize(
    "path",
    [p for p in GATEWAY if str(p.relative_to(ROOT / "gateway")) not in CLOCK_READERS],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_gateway_decides_by_the_clock_it_is_given(path: Path) -> None:
    """Like the CA, the gateway is given a clock (``ca_service.shared.clock``); tests pass
    their own. A monotonic clock for timeouts and caches is passed in as well."""
    assert _clock_reads(path) == []


def test_the_clock_check_finds_reads(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import time\nfrom datetime import UTC, datetime\n"
        "a = datetime.now(UTC)\nb = time.time()\nc = time.monotonic()\n"
        "d = time.perf_counter()\ne = clock.now()\n"
    )
    assert _clock_reads(probe) == [
        "probe.py:3 datetime.now()",
        "probe.py:4 time.time()",
        "probe.py:5 time.monotonic()",
    ]
