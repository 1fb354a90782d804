"""The Sentinel URL (``redis+sentinel://``): every part, its defaults, and the refusals, none
of which repeats a password."""

from __future__ import annotations

import pytest

from ca_service.config import load_settings
from ca_service.errors import ConfigurationError
from ca_service.shared.redis_url import (
    ReplicaAcks,
    SentinelUrl,
    check_redis_url,
    is_sentinel_url,
    parse_sentinel_url,
)
from gateway.config import load_settings as load_gateway_settings
from gateway.errors import GatewayConfigurationError


def test_the_shortest_form_takes_the_defaults() -> None:
    assert parse_sentinel_url("redis+sentinel://sentinel1/ca-redis") == SentinelUrl(
        sentinels=(("sentinel1", 26379),),
        service="ca-redis",
        db=0,
        acks=ReplicaAcks(replicas=1, timeout_ms=500),
    )


def test_every_part() -> None:
    url = (
        "rediss+sentinel://ca%40bank:p%40ss%3Aw%2Frd@10.0.0.1:26380,[fd00::2],sentinel3:5000"
        "/ca%20redis/3?sentinel_username=watch&sentinel_password=s%26cret"
        "&wait_replicas=2&wait_timeout_ms=250&ssl_ca_certs=/etc/redis/ca.pem"
        "&ssl_certfile=/etc/redis/client.pem&ssl_keyfile=/etc/redis/client.key"
    )
    assert parse_sentinel_url(url) == SentinelUrl(
        sentinels=(("10.0.0.1", 26380), ("fd00::2", 26379), ("sentinel3", 5000)),
        service="ca redis",
        db=3,
        username="ca@bank",
        password="p@ss:w/rd",
        sentinel_username="watch",
        sentinel_password="s&cret",
        tls=True,
        ssl_ca_certs="/etc/redis/ca.pem",
        ssl_certfile="/etc/redis/client.pem",
        ssl_keyfile="/etc/redis/client.key",
        acks=ReplicaAcks(replicas=2, timeout_ms=250),
    )


def test_password_without_user_and_wait_turned_off() -> None:
    parsed = parse_sentinel_url("redis+sentinel://:secret@h1:1,h2:2/svc?wait_replicas=0")
    assert (parsed.username, parsed.password, parsed.acks) == (None, "secret", None)
    assert "secret" not in repr(parsed)
    assert parse_sentinel_url("REDIS+SENTINEL://h/svc").sentinels == (("h", 26379),)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://:pw0rd@/svc", "HOST[:PORT]"),
        ("redis+sentinel://:pw0rd@h1,,h2/svc", "HOST[:PORT]"),
        ("redis+sentinel://:pw0rd@h1:0/svc", "port must be a number"),
        ("redis+sentinel://:pw0rd@h1:65536/svc", "port must be a number"),
        ("redis+sentinel://:pw0rd@h1:x/svc", "port must be a number"),
        ("redis+sentinel://:pw0rd@fd00::1/svc", "IPv6"),
        ("redis+sentinel://:pw0rd@[fd00::1]x/svc", "IPv6"),
        ("redis+sentinel://:pw0rd@h1", "name the Sentinel service"),
        ("redis+sentinel://:pw0rd@h1/", "name the Sentinel service"),
        ("redis+sentinel://:pw0rd@h1/svc/x", "DB a database number"),
        ("redis+sentinel://:pw0rd@h1/svc/0/1", "DB a database number"),
        ("redis+sentinel://:pw0rd@h1/svc#x", "fragment"),
        ("redis+sentinel://:pw0rd@h1/svc?password=pw0rd", "unknown option 'password'"),
        ("redis+sentinel://:pw0rd@h1/svc?ssl_ca_certs=/ca.pem", "needs TLS"),
        ("redis+sentinel://:pw0rd@h1/svc?wait_replicas=1&wait_replicas=2", "twice"),
        ("redis+sentinel://:pw0rd@h1/svc?sentinel_password=", "empty"),
        ("redis+sentinel://:pw0rd@h1/svc?wait_replicas=-1", "from 0 to 100"),
        ("redis+sentinel://:pw0rd@h1/svc?wait_timeout_ms=0", "from 1 to 2000"),
        ("redis+sentinel://:pw0rd@h1/svc?wait_timeout_ms=3000", "from 1 to 2000"),
    ],
)
def test_refusals_say_why_and_never_show_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        parse_sentinel_url(url)
    assert "pw0rd" not in str(e.value)


def test_which_urls_the_settings_accept() -> None:
    for url in (
        "redis://127.0.0.1:6379/0",
        "rediss://:pw@redis.example.jp:6380/1",
        "unix:///run/redis.sock?db=2",
        "redis+sentinel://s1,s2,s3/ca-redis/0",
    ):
        assert check_redis_url(url) == url
    assert is_sentinel_url("rediss+sentinel://s1/x") and not is_sentinel_url("redis://s1")
    for url in ("http://127.0.0.1:6379", "127.0.0.1:6379", "sentinel://s1/x"):
        with pytest.raises(ValueError, match="starts with one of"):
            check_redis_url(url)


def test_both_services_refuse_a_wrong_url_at_start_without_showing_it() -> None:
    url = "redis+sentinel://:pw0rd@s1,s2/ca-redis?wait_replicas=many"
    with pytest.raises(ConfigurationError) as ca:
        load_settings({"CA_REDIS_URL": url})
    assert "CA_REDIS_URL" in str(ca.value) and "wait_replicas" in str(ca.value)
    environment = {
        "GATEWAY_TLS_CERT": "c",
        "GATEWAY_TLS_KEY": "k",
        "GATEWAY_CLIENT_TRUST": "t",
        "GATEWAY_CA_CREDENTIAL_DIR": "d",
        "GATEWAY_REDIS_URL": url,
    }
    with pytest.raises(GatewayConfigurationError) as gateway:
        load_gateway_settings(environment)
    assert "GATEWAY_REDIS_URL" in str(gateway.value) and "wait_replicas" in str(gateway.value)
    for error in (ca.value, gateway.value):
        assert "pw0rd" not in str(error)
    environment["GATEWAY_REDIS_URL"] = "redis+sentinel://:pw0rd@s1,s2/ca-redis"
    assert load_gateway_settings(environment).redis_url == environment["GATEWAY_REDIS_URL"]
