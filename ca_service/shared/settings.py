"""Settings as declarative tables, read the same way by ``ca-service`` and ``ca-gateway``.

A program declares each setting once (:class:`Setting`: name, default, description, parser,
whether it is secret) and reads them with :func:`read_settings`, from, in rising order of
precedence: the default, a TOML file named by ``<PREFIX>CONFIG_FILE`` (keys are the setting
names), ``<PREFIX>X_FILE`` (a file holding the value; secret settings only),
``<PREFIX>X``, and overrides from the command line. Secrets are never read from the command
line and never shown by ``repr``; their ``_FILE`` variant lets them come from a mounted
secret rather than the environment. :func:`configuration_reference` prints the table for the
README. Errors are :class:`ConfigError`, naming the variable, never a secret's value.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ca_service.shared.errors import ConfigError

__all__ = [
    "RawSettings",
    "Secret",
    "Setting",
    "SettingFactory",
    "address",
    "configuration_reference",
    "flag",
    "non_negative_int",
    "positive_int",
    "positive_number",
    "read_settings",
]


class Secret:
    """A secret value whose repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Setting:
    """One setting of a program whose environment variables start with ``prefix``.

    ``default`` None: the setting is optional (the program derives a value) or, with
    ``required``, must be given. ``secret``: may come from ``<env>_FILE``; the program keeps
    it out of every repr and log."""

    prefix: str
    name: str
    default: str | None
    description: str
    parse: Callable[[str], Any] = str
    secret: bool = False
    required: bool = False

    @property
    def env(self) -> str:
        return self.prefix + self.name.upper()


class SettingFactory:
    """Declares the settings of one program: ``setting = SettingFactory("CA_")`` and then
    ``setting("data_dir", "./ca-data", "What it is.", parse)``. With
    ``required_without_default``, a setting without a default must be given."""

    def __init__(self, prefix: str, *, required_without_default: bool = False) -> None:
        self._prefix = prefix
        self._required_without_default = required_without_default

    def __call__(
        self,
        name: str,
        default: str | None,
        description: str,
        parse: Callable[[str], Any] = str,
        *,
        secret: bool = False,
    ) -> Setting:
        required = self._required_without_default and default is None
        return Setting(self._prefix, name, default, description, parse, secret, required)


# -- parsers (ValueError with a short reason) ----------------------------------------------


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


def positive_number(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError("must be a positive number")
    return number


def flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0")


def address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host may be bracketed)."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("must be HOST:PORT")
    return host.strip("[]"), int(port)


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawSettings:
    """Each setting's text as found (None: not given and no default) and where it came
    from (``default``, ``file``, ``env-file``, ``env`` or ``option``)."""

    table: Mapping[str, Setting]
    values: Mapping[str, str | None]
    sources: Mapping[str, str] = field(default_factory=dict)

    def parsed(self, name: str) -> Any:
        """The setting's parsed value; None when it has none; :class:`ConfigError` when it
        is missing but required or does not parse."""
        setting = self.table[name]
        value = self.values[name]
        if value is None:
            if setting.required:
                raise ConfigError(f"{setting.env} must be set: {setting.description}")
            return None
        try:
            return setting.parse(value)
        except ValueError as exc:
            raise ConfigError(f"{setting.env}: invalid value: {exc}") from None

    def secret(self, name: str) -> Secret | None:
        """A secret setting's value, wrapped; None when empty or not given. Its ``parse``
        checks the text; the message never quotes it."""
        value = self.values[name]
        if not value:
            return None
        try:
            self.table[name].parse(value)
        except ValueError as exc:
            raise ConfigError(f"{self.table[name].env}: invalid value: {exc}") from None
        return Secret(value)


def _read_secret_file(path: str, env: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{env}_FILE: cannot read {path}: {exc.strerror}") from None


def _config_file(path: str, variable: str, known: Iterable[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{variable} {path}: {exc}") from None
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"{variable}: unknown settings {sorted(unknown)}")
    return values


def _config_file_variable(settings: Sequence[Setting]) -> str:
    """The variable naming the TOML file: ``<PREFIX>CONFIG_FILE``."""
    return settings[0].prefix + "CONFIG_FILE"


def read_settings(
    settings: Sequence[Setting],
    environ: Mapping[str, str],
    *,
    overrides: Mapping[str, str | None] | None = None,
) -> RawSettings:
    """Every setting's text, from the default, the TOML file, ``_FILE``, the environment
    and ``overrides`` (command-line options), each winning over the ones before."""
    table = {setting.name: setting for setting in settings}
    variable = _config_file_variable(settings)
    file_values = _config_file(environ[variable], variable, table) if environ.get(variable) else {}
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for setting in settings:
        value: str | None = setting.default
        source = "default"
        if setting.name in file_values:
            value, source = str(file_values[setting.name]), "file"
        if setting.secret and environ.get(setting.env + "_FILE"):
            value = _read_secret_file(environ[setting.env + "_FILE"], setting.env)
            source = "env-file"
        if environ.get(setting.env) is not None:
            value, source = environ[setting.env], "env"
        if overrides and overrides.get(setting.name) is not None:
            value, source = overrides[setting.name], "option"
        values[setting.name] = value
        sources[setting.name] = source
    return RawSettings(table, values, sources)


def configuration_reference(
    settings: Sequence[Setting], extra: Sequence[tuple[str, str, str]] = ()
) -> str:
    """The Markdown table of every setting, for the README; ``extra`` adds rows of
    (variable, default, meaning) for what the program reads besides its settings."""
    lines = [
        "| setting (TOML key) | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for setting in settings:
        env = f"`{setting.env}`" + (f" or `{setting.env}_FILE`" if setting.secret else "")
        if setting.default is None:
            default = "(required)" if setting.required else "(see meaning)"
        else:
            default = f"`{setting.default}`" if setting.default else "(empty)"
        lines.append(f"| `{setting.name}` | {env} | {default} | {setting.description} |")
    variable = _config_file_variable(settings)
    rows = [
        (
            variable,
            "(none)",
            "TOML file with any of the settings above (keys as in the first column); "
            "environment variables win over it.",
        ),
        *extra,
    ]
    lines += [f"| | `{name}` | {default} | {meaning} |" for name, default, meaning in rows]
    return "\n".join(lines)
