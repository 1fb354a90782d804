"""``ca-gateway``: the mTLS gateway in front of the portal (SPEC E1–E4).

ca-gateway serve             run (GATEWAY_WORKERS processes share the port)
ca-gateway config-reference  the settings table (Markdown)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from redis.asyncio import Redis

from ca_service.adapters.keystore import CaFiles, ClientCredential
from ca_service.cli.common import configure_logging, fail
from ca_service.client import aio_secure_channel
from ca_service.errors import ConfigurationError
from ca_service.workers import supervise
from gateway.accesslog import BatchedLines
from gateway.app import Gateway
from gateway.ca_client import CaClient, CaUnavailable
from gateway.config import GatewaySettings, configuration_reference, load_settings
from gateway.crl_fallback import CrlSource
from gateway.errors import GatewayConfigurationError
from gateway.proxy import Upstream, UpstreamPool
from gateway.revocations import RevocationFollower
from gateway.server import HttpServer
from gateway.sessions import SessionStore
from gateway.tls import ReloadingServerContext, TlsFiles
from gateway.web.pages import Pages

__all__ = ["main", "serve"]

log = logging.getLogger("ca-gateway")


def _credential(directory: str) -> ClientCredential:
    try:
        return CaFiles(Path(directory)).client_credential(directory=Path(directory))
    except ConfigurationError as exc:
        raise GatewayConfigurationError(str(exc)) from None


async def _issuing_ca(ca: CaClient, wait: float = 30.0) -> bytes:
    """The issuing CA certificate, from the CA (which may still be starting)."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return await ca.issuing_ca()
        except CaUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def serve(settings: GatewaySettings, *, reuse_port: bool = False) -> None:
    credential = _credential(settings.ca_credential_dir)

    def channel() -> grpc.aio.Channel:
        return aio_secure_channel(settings.ca_address, credential, settings.ca_server_name or None)

    ca_channel = channel()
    ca = CaClient(ca_channel, user_cache_seconds=settings.user_cache_seconds)
    issuer_der = await _issuing_ca(ca)
    stop = asyncio.Event()
    try:
        crl = CrlSource(settings.crl_url, issuer_der) if settings.crl_url else None
    except ValueError as exc:
        raise GatewayConfigurationError(f"GATEWAY_CRL_URL: {exc}") from None
    follower = RevocationFollower(
        channel, max_staleness=settings.max_staleness, forget_user=ca.forget_user, crl=crl
    )
    following = asyncio.create_task(follower.run(stop))
    redis = Redis.from_url(settings.redis_url)
    upstream = UpstreamPool(
        Upstream.from_url(
            settings.upstream,
            connect_timeout=settings.upstream_connect_timeout,
            response_timeout=settings.upstream_timeout,
            pool_size=settings.upstream_pool,
        )
    )
    # The access log: JSON lines on stderr, unless the log level hides INFO.
    access_lines = (
        BatchedLines(sys.stderr) if logging.getLogger().isEnabledFor(logging.INFO) else None
    )
    certificate, key, trust = settings.paths()
    tls = ReloadingServerContext(TlsFiles(certificate, key, trust))
    gateway = Gateway(
        ca=ca,
        issuer_der=issuer_der,
        revocations=follower,
        sessions=SessionStore(
            redis, idle=settings.session_idle, absolute=settings.session_absolute
        ),
        upstream=upstream,
        pages=Pages(settings.site_name),
        require_login=settings.require_login,
        header_names=settings.identity_header_names,
        xfcc_by=settings.xfcc_by,
        max_staleness=settings.max_staleness,
        access_lines=access_lines,
    )
    server = HttpServer(
        gateway.handle, tls.listening, error_page=gateway.error_page, access_log=gateway.log_access
    )
    host, port = settings.listen
    port = await server.start(host, port, reuse_port=reuse_port)
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
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await upstream.close()
        await redis.aclose()
        await ca_channel.close(None)


def _serve(settings: GatewaySettings, reuse_port: bool) -> int:
    if settings.workers > 1 and not reuse_port:
        host, port = settings.listen
        if port == 0:
            raise GatewayConfigurationError("GATEWAY_WORKERS > 1 needs an explicit port")
        return supervise(
            [sys.executable, "-m", "gateway.cli", "serve", "--reuse-port"],
            dict(os.environ, GATEWAY_WORKERS="1"),
            settings.workers,
            f"ca-gateway: listening on https://{host}:{port}/ ({settings.workers} worker "
            "processes)",
            "listening on",
        )
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
        return _serve(settings, args.reuse_port)
    except (GatewayConfigurationError, CaUnavailable) as exc:
        fail("ca-gateway", str(exc))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
