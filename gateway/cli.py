"""``ca-gateway``: the mTLS gateway in front of the portal (SPEC E1–E4).

ca-gateway serve             run (GATEWAY_WORKERS processes share the port)
ca-gateway config-reference  the settings table (Markdown)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import grpc
from cryptography import x509

from ca_service.client import aio_secure_channel
from ca_service.shared.cli import configure_logging, fail
from ca_service.shared.clock import Clock, SystemClock
from ca_service.shared.credentials import ClientCredential, load_credential
from ca_service.shared.errors import ConfigError
from ca_service.shared.net.guard import process_guard
from ca_service.shared.net.resources import use_malloc
from ca_service.shared.redis_peer import open_peer
from ca_service.shared.workers import supervise
from gateway.accesslog import BatchedLines
from gateway.app import Gateway
from gateway.ca_client import CaClient, CaUnavailable
from gateway.card import CardTrust
from gateway.card_crl import CardRevocations
from gateway.config import GatewaySettings, configuration_reference, load_settings
from gateway.crl_fallback import CrlSource
from gateway.errors import GatewayConfigurationError, RedisUnavailable
from gateway.health import CaHealth, probe_redis
from gateway.proxy import Upstream, UpstreamPool
from gateway.ratelimit import ClientLimit, Rate, TokenBuckets
from gateway.revocations import RevocationFollower
from gateway.routes import RouteTable
from gateway.server import HttpServer
from gateway.sessions import SessionStore
from gateway.tls import ReloadingServerContext, TlsFiles
from gateway.web.pages import Pages

__all__ = ["main", "serve"]

log = logging.getLogger("ca-gateway")

T = TypeVar("T")


def _credential(directory: str) -> ClientCredential:
    try:
        return load_credential(Path(directory))
    except ConfigError as exc:
        raise GatewayConfigurationError(str(exc)) from None


async def _from_the_ca(call: Callable[[], Awaitable[T]], wait: float = 30.0) -> T:
    """What ``call`` gets from the CA, which may still be starting."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return await call()
        except CaUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


def _cards(
    settings: GatewaySettings, issuer_der: bytes, clock: Clock
) -> tuple[CardTrust | None, CardRevocations | None, tuple[Path, ...]]:
    """The identity card CAs (SPEC D2) and their CRLs, when configured."""
    if not settings.card_trust:
        return None, None, ()
    path = Path(settings.card_trust)
    try:
        anchors = x509.load_pem_x509_certificates(path.read_bytes())
        cards = CardTrust(anchors, settings.card_attributes, our_issuer_der=issuer_der)
        revocations = CardRevocations(
            settings.card_crl_url_list(),
            anchors,
            now=clock.now,
            refresh=settings.card_crl_refresh,
        )
    except OSError as exc:
        raise GatewayConfigurationError(f"GATEWAY_CARD_TRUST: {exc.strerror}") from None
    except ValueError as exc:
        raise GatewayConfigurationError(f"GATEWAY_CARD_TRUST: {exc}") from None
    return cards, revocations, (path,)


async def serve(settings: GatewaySettings, *, reuse_port: bool = False) -> None:
    credential = _credential(settings.ca_credential_dir)

    def channel() -> grpc.aio.Channel:
        return aio_secure_channel(settings.ca_address, credential, settings.ca_server_name or None)

    ca_channel = channel()
    ca = CaClient(ca_channel, user_cache_seconds=settings.user_cache_seconds)
    issuer_der = await _from_the_ca(ca.issuing_ca)
    try:
        rules = await _from_the_ca(ca.rules)
    except ValueError as exc:
        raise GatewayConfigurationError(f"the CA's answer to GetRules: {exc}") from None
    clock = SystemClock()
    cards, card_revocations, card_anchor_files = _cards(settings, issuer_der, clock)
    stop = asyncio.Event()
    try:
        crl = CrlSource(settings.crl_url, issuer_der) if settings.crl_url else None
    except ValueError as exc:
        raise GatewayConfigurationError(f"GATEWAY_CRL_URL: {exc}") from None
    follower = RevocationFollower(
        channel, max_staleness=settings.max_staleness, forget_user=ca.forget_user, crl=crl
    )
    following = asyncio.create_task(follower.run(stop))
    ca_health = CaHealth(ca_channel)
    redis = open_peer(settings.redis_url, decode_responses=False, error=RedisUnavailable)
    watchers = [
        asyncio.create_task(ca_health.run(stop)),
        asyncio.create_task(probe_redis(redis, stop)),
    ]
    routes = RouteTable(settings.route_list())
    upstreams = {
        url: UpstreamPool(
            Upstream.from_url(
                url,
                connect_timeout=settings.upstream_connect_timeout,
                response_timeout=settings.upstream_timeout,
                pool_size=settings.upstream_pool,
            )
        )
        for url in {settings.upstream, *(route.upstream for route in routes.routes)}
    }
    upstream = upstreams[settings.upstream]
    if card_revocations is not None:
        watchers.append(asyncio.create_task(card_revocations.run(stop)))
    # The access log: JSON lines on stderr, unless the log level hides INFO.
    access_lines = (
        BatchedLines(sys.stderr) if logging.getLogger().isEnabledFor(logging.INFO) else None
    )
    certificate, key, trust = settings.paths()
    tls = ReloadingServerContext(
        TlsFiles(certificate, key, trust, card_anchor_files),
        name_client_cas=settings.client_ca_names,
    )
    gateway = Gateway(
        ca=ca,
        issuer_der=issuer_der,
        revocations=follower,
        sessions=SessionStore(
            redis, idle=settings.session_idle, absolute=settings.session_absolute, clock=clock
        ),
        redis=redis,
        upstream=upstream,
        pages=Pages(settings.site_name, rules),
        rules=rules,
        clock=clock,
        require_login=settings.require_login,
        header_names=settings.identity_header_names,
        xfcc_by=settings.xfcc_by,
        max_staleness=settings.max_staleness,
        access_lines=access_lines,
        limit=ClientLimit(
            TokenBuckets(redis),
            "auth",
            Rate(settings.auth_rate_per_minute, settings.auth_burst),
            settings.trusted_proxies,
        ).check,
        ca_health=ca_health,
        routes=routes,
        upstreams=upstreams,
        cards=cards,
        card_revocations=card_revocations,
        card_header_names=settings.card_header_names,
    )
    guard = process_guard(
        "ca-gateway",
        max_connections=settings.max_connections,
        reserve=settings.descriptor_reserve,
        head_timeout=settings.head_timeout,
        release_memory=True,
    )
    server = HttpServer(
        gateway.handle,
        guard=guard,
        error_page=gateway.error_page,
        access_log=gateway.log_access,
        tls=tls,
    )
    host, port = settings.listen
    port = await server.start(host, port, reuse_port=reuse_port)
    # What start-up made (gRPC, cryptography, templates) lives as long as the process: out of
    # the collector's sight, so that its full collections under load stay short.
    gc.freeze()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    print(
        f"ca-gateway: listening on https://{host}:{port}/ (upstream {settings.upstream})",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await server.stop()
        if access_lines is not None:
            access_lines.flush()
        for task in (following, *watchers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pool in upstreams.values():
            await pool.close()
        await redis.aclose()
        await ca_channel.close(None)


def _serve(settings: GatewaySettings, reuse_port: bool, *, own_process: bool) -> int:
    """``own_process``: this is the program itself (not a call from other Python code), so
    it may restart itself with ``PYTHONMALLOC=malloc`` (README "Gateway memory")."""
    if settings.workers > 1 and not reuse_port:
        host, port = settings.listen
        if port == 0:
            raise GatewayConfigurationError("GATEWAY_WORKERS > 1 needs an explicit port")
        try:
            return supervise(
                [sys.executable, "-m", "gateway.cli", "serve", "--reuse-port"],
                dict(os.environ, GATEWAY_WORKERS="1", PYTHONMALLOC="malloc"),
                settings.workers,
                f"ca-gateway: listening on https://{host}:{port}/ ({settings.workers} worker "
                "processes)",
                "listening on",
            )
        except ConfigError as exc:
            raise GatewayConfigurationError(str(exc)) from None
    if own_process:
        use_malloc(sys.orig_argv[1:])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(settings, reuse_port=reuse_port))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ca-gateway", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the gateway")
    serve_parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    commands.add_parser("config-reference", help="print the settings table (Markdown)")
    args = parser.parse_args(argv)
    if args.command == "config-reference":
        print(configuration_reference())
        return 0
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        return _serve(settings, args.reuse_port, own_process=argv is None)
    except (GatewayConfigurationError, CaUnavailable) as exc:
        fail("ca-gateway", str(exc))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
