"""The README's promises that code can check: its configuration table and its commands."""

from __future__ import annotations

import re
from pathlib import Path

from ca_service.config import configuration_reference
from gateway.config import configuration_reference as gateway_configuration_reference
from gateway.portal.config import configuration_reference as portal_configuration_reference

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_configuration_reference_is_current() -> None:
    match = re.search(
        r"<!-- config-reference:start -->\n(.*?)\n<!-- config-reference:end -->", README, re.S
    )
    assert match, "README lacks the configuration reference markers"
    assert match.group(1) == configuration_reference(), (
        "README configuration table is stale: paste `ca-service config-reference` into it"
    )


def test_gateway_configuration_reference_is_current() -> None:
    match = re.search(
        r"<!-- gateway-config-reference:start -->\n(.*?)\n<!-- gateway-config-reference:end -->",
        README,
        re.S,
    )
    assert match, "README lacks the gateway configuration reference markers"
    assert match.group(1) == gateway_configuration_reference(), (
        "README gateway settings are stale: paste `ca-gateway config-reference` into it"
    )


def test_portal_configuration_reference_is_current() -> None:
    match = re.search(
        r"<!-- portal-config-reference:start -->\n(.*?)\n<!-- portal-config-reference:end -->",
        README,
        re.S,
    )
    assert match, "README lacks the portal configuration reference markers"
    assert match.group(1) == portal_configuration_reference(), (
        "README portal settings are stale: paste `ca-portal config-reference` into it"
    )


def test_ci_runs_the_readme_test_command() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(python3 stack\.py \w+)", quick_start, re.M)
    assert commands == ["python3 stack.py up", "python3 stack.py test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec python3 stack.py test" in ci


def test_the_extras_stack_py_counts_as_included_are_included() -> None:
    """`stack.py test` records the demo extra as installed (so that `stack.py up`, run by a
    test, does not install the project again under the running tests): pyproject.toml's
    extra must really pull it in."""
    import importlib.util
    import tomllib

    spec = importlib.util.spec_from_file_location("stack", ROOT / "stack.py")
    assert spec is not None and spec.loader is not None
    stack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stack)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert stack.INCLUDED_EXTRAS, "stack.py names no included extras"
    for extra, included in stack.INCLUDED_EXTRAS.items():
        for name in included:
            assert f"ca-service[{name}]" in extras[extra], (extra, name)
