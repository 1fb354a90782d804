"""deploy/: the env files name only settings the programs know; the units run the console
scripts the project installs and read those env files."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

import pytest

from ca_service.config import SETTINGS as CA_SETTINGS
from gateway.config import SETTINGS as GATEWAY_SETTINGS
from gateway.portal.config import SETTINGS as PORTAL_SETTINGS

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SCRIPTS = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]["scripts"]


def known_variables(settings: tuple[object, ...]) -> set[str]:
    """Every environment variable a settings table reads: each setting, and the _FILE
    variant of each secret one (CA_X_FILE)."""
    known = {s.env for s in settings}  # type: ignore[attr-defined]
    known |= {s.env + "_FILE" for s in settings if getattr(s, "secret", False)}  # type: ignore[attr-defined]
    return known


def _variables(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            found[name.strip()] = value
    return found


@pytest.mark.parametrize(
    ("env_file", "settings"),
    [
        ("ca-service.env", CA_SETTINGS),
        ("ca-gateway.env", GATEWAY_SETTINGS),
        ("ca-portal.env", PORTAL_SETTINGS),
    ],
)
def test_env_files_name_known_settings(env_file: str, settings: tuple[object, ...]) -> None:
    known = known_variables(settings)
    variables = _variables(DEPLOY / env_file)
    assert variables and set(variables) <= known, set(variables) - known
    for name, value in variables.items():
        assert not (name.endswith(("PASSWORD", "PASSPHRASE")) and value), f"{name} in clear"


@pytest.mark.parametrize("unit", ["ca-service.service", "ca-gateway.service", "ca-portal.service"])
def test_units_run_installed_scripts_with_their_env_file(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(DEPLOY / unit)
    service = parser["Service"]
    program = Path(service["ExecStart"].split()[0]).name
    assert program in SCRIPTS
    assert (DEPLOY / Path(service["EnvironmentFile"]).name).exists()
    assert service["NoNewPrivileges"] == "yes"
