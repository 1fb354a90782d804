"""ca_service.shared.settings through both programs' tables: the TOML file, ``*_FILE``
secrets, the environment over both, required settings, errors that name the variable and
never the value, and no secret in a repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from ca_service.adapters.keystore import CaFiles
from ca_service.config import hex_key
from ca_service.config import load_settings as load_ca_settings
from ca_service.errors import ConfigurationError
from gateway.config import load_settings as load_gateway_settings
from gateway.errors import GatewayConfigurationError

PASSWORD_URL = "redis://:s3cret-pw@redis.example.jp:6379/1"


def _gateway_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "GATEWAY_TLS_CERT": str(tmp_path / "cert.pem"),
        "GATEWAY_TLS_KEY": str(tmp_path / "key.pem"),
        "GATEWAY_CLIENT_TRUST": str(tmp_path / "trust.pem"),
        "GATEWAY_CA_CREDENTIAL_DIR": str(tmp_path / "credential"),
        **extra,
    }


def test_the_gateway_reads_a_toml_file_and_the_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        'upstream = "http://portal.internal:8081"\nworkers = 3\nrequire_login = false\n'
        'session_idle = 600\nlisten = "0.0.0.0:443"\n'
    )
    settings = load_gateway_settings(
        _gateway_env(tmp_path, GATEWAY_CONFIG_FILE=str(config), GATEWAY_SESSION_IDLE="900")
    )
    assert settings.upstream == "http://portal.internal:8081"
    assert settings.workers == 3 and settings.require_login is False
    assert settings.listen == ("0.0.0.0", 443)
    assert settings.session_idle == 900  # the environment over the file


def test_the_gateways_redis_url_comes_from_a_file_and_stays_out_of_the_repr(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "redis-url"
    secret.write_text(PASSWORD_URL + "\n")
    settings = load_gateway_settings(_gateway_env(tmp_path, GATEWAY_REDIS_URL_FILE=str(secret)))
    assert settings.redis_url == PASSWORD_URL
    assert "s3cret-pw" not in repr(settings)
    # The value wins over the file, as for every setting.
    env = _gateway_env(tmp_path, GATEWAY_REDIS_URL_FILE=str(secret))
    env["GATEWAY_REDIS_URL"] = "redis://127.0.0.1:6380/0"
    assert load_gateway_settings(env).redis_url == "redis://127.0.0.1:6380/0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEWAY_TLS_CERT": None}, "GATEWAY_TLS_CERT must be set"),
        ({"GATEWAY_WORKERS": "0"}, "GATEWAY_WORKERS: invalid value: must be a positive integer"),
        ({"GATEWAY_LISTEN": "nohost"}, "GATEWAY_LISTEN: invalid value: must be HOST:PORT"),
        ({"GATEWAY_REDIS_URL_FILE": "/nonexistent/redis-url"}, "GATEWAY_REDIS_URL_FILE: cannot"),
        ({"GATEWAY_CONFIG_FILE": "{toml}"}, "GATEWAY_CONFIG_FILE: unknown settings ['colour']"),
    ],
)
def test_the_gateway_names_what_is_wrong(
    tmp_path: Path, env: dict[str, str | None], message: str
) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text('colour = "blue"\n')
    environ = _gateway_env(tmp_path)
    for name, value in env.items():
        if value is None:
            environ.pop(name)
        else:
            environ[name] = value.replace("{toml}", str(toml))
    with pytest.raises(GatewayConfigurationError) as caught:
        load_gateway_settings(environ)
    assert message in str(caught.value)


def test_the_cas_urls_come_from_files_and_stay_out_of_the_repr(tmp_path: Path) -> None:
    database, redis = tmp_path / "database-url", tmp_path / "redis-url"
    database.write_text("postgresql://ca:db-s3cret@db.example.jp:5432/ca\n")
    redis.write_text(PASSWORD_URL + "\n")
    settings = load_ca_settings(
        {
            "CA_DATA_DIR": str(tmp_path / "ca"),
            "CA_DATABASE_URL_FILE": str(database),
            "CA_REDIS_URL_FILE": str(redis),
        }
    )
    assert settings.database_url == "postgresql://ca:db-s3cret@db.example.jp:5432/ca"
    assert settings.redis_url == PASSWORD_URL
    assert settings.sources["redis_url"] == "env-file"
    assert "s3cret" not in repr(settings)


def test_the_ca_says_which_file_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "ca.toml"
    config.write_text("lock_seconds = 0\n")
    with pytest.raises(ConfigurationError, match="CA_LOCK_SECONDS: invalid value"):
        load_ca_settings({"CA_CONFIG_FILE": str(config)})
    config.write_text("not toml [")
    with pytest.raises(ConfigurationError, match="CA_CONFIG_FILE"):
        load_ca_settings({"CA_CONFIG_FILE": str(config)})


def test_the_code_key_file_of_the_data_directory_serves_as_ca_code_key_file(
    tmp_path: Path,
) -> None:
    """Several processes share the code MAC key: the file `init` writes, given as
    CA_CODE_KEY_FILE to a process without that data directory, makes the same key."""
    files = CaFiles(tmp_path / "ca")
    key = files.code_key()
    settings = load_ca_settings(
        {
            "CA_DATA_DIR": str(tmp_path / "other"),
            "CA_CODE_KEY_FILE": str(files.path("secrets", "code-key")),
        }
    )
    assert settings.code_key is not None
    assert hex_key(settings.code_key.reveal()) == key
    assert key.hex() not in repr(settings)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [("not-hex-secret-zz", "hexadecimal"), ("ab" * 32, None), ("ab" * 8, "32")],
)
def test_a_code_key_that_is_no_key_is_refused_without_quoting_it(
    tmp_path: Path, text: str, complaint: str | None
) -> None:
    environment = {"CA_DATA_DIR": str(tmp_path / "ca"), "CA_CODE_KEY": text}
    if complaint is None:
        assert load_ca_settings(environment).code_key is not None
        return
    refusal = f"CA_CODE_KEY: invalid value.*{complaint}"
    with pytest.raises(ConfigurationError, match=refusal) as info:
        load_ca_settings(environment)
    assert text not in str(info.value)
