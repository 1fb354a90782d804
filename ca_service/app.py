"""Wiring only: settings → adapters → services → servers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from grpc_health.v1 import health_pb2
from redis.asyncio import Redis

from ca_service.adapters.clock import SystemClock
from ca_service.adapters.grpc.server import SERVICE_NAME, HealthServicer, build_server
from ca_service.adapters.grpc.servicer import CertificateAuthorityServicer
from ca_service.adapters.http.relying_party import RelyingPartyEndpoints
from ca_service.adapters.http.server import HttpServer
from ca_service.adapters.keystore import CaFiles, LoadedCa
from ca_service.adapters.mail.outbox import SqlOutbox
from ca_service.adapters.mail.worker import MailDelivery
from ca_service.adapters.passwords import Argon2Passwords
from ca_service.adapters.redis.client import connect as connect_redis
from ca_service.adapters.redis.codes import RedisCodeStore
from ca_service.adapters.redis.lockout import RedisLockoutStore
from ca_service.adapters.sql.accounts import SqlAccountStore
from ca_service.adapters.sql.audit import SqlAuditLog
from ca_service.adapters.sql.certificates import SqlCertificateStore
from ca_service.adapters.sql.crls import SqlCrlStore
from ca_service.adapters.sql.database import Database, open_database
from ca_service.adapters.sql.migrations import migrate
from ca_service.adapters.sql.revocations import SqlRevocationStore
from ca_service.config import Settings
from ca_service.errors import ConfigurationError
from ca_service.pki.certificates import ClientCertificateFactory
from ca_service.pki.signer import SoftwareSigner
from ca_service.ports import Clock
from ca_service.services.accounts import AccountService
from ca_service.services.crl import CrlPolicy, CrlPublisher
from ca_service.services.enrollment import EnrollmentService, EnrollmentTimes
from ca_service.services.issuance import IssuanceService
from ca_service.services.notices import queue_certificate_notices
from ca_service.services.ocsp import OcspResponder
from ca_service.services.revocation import RevocationFeed, RevocationService
from ca_service.workers import supervise

__all__ = ["Application", "serve", "start"]

log = logging.getLogger(__name__)


@dataclass
class Application:
    database: Database
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    redis: Redis
    pkcs12_pool: ProcessPoolExecutor
    feed: RevocationFeed
    http: HttpServer
    http_port: int
    background: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.http.stop()
        self.stopping.set()
        if self.background:
            await asyncio.wait(self.background, timeout=grace)
        for task in self.background:
            task.cancel()
        await self.feed.stop()
        await self.redis.aclose()
        self.pkcs12_pool.shutdown(wait=False, cancel_futures=True)
        self.database.close()


async def _every(
    interval: float, stop: asyncio.Event, work: Callable[[], Awaitable[object]], what: str
) -> None:
    """Runs ``work`` now and then every ``interval`` seconds until ``stop``; a failure is
    logged and retried at the next interval, never fatal."""
    while not stop.is_set():
        try:
            await work()
        except Exception as exc:
            log.warning("%s failed: %s", what, type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def _crl_publisher(
    settings: Settings, loaded: LoadedCa, database: Database, clock: Clock
) -> CrlPublisher:
    policy = CrlPolicy(
        validity=timedelta(hours=settings.crl_validity_hours),
        delta_validity=timedelta(minutes=settings.crl_delta_validity_minutes),
        interval=timedelta(minutes=settings.crl_interval_minutes),
        freshest_crl_url=settings.delta_crl_url,
    )
    return CrlPublisher(
        store=SqlCrlStore(database),
        signer=SoftwareSigner(loaded.issuing_key),
        issuer_name=loaded.issuing.subject.public_bytes(),
        issuer_key_id=_key_id(loaded.issuing),
        clock=clock,
        policy=policy,
    )


def _mail_delivery(settings: Settings, database: Database, clock: Clock) -> MailDelivery:
    return MailDelivery(
        database,
        settings.smtp_host,
        settings.smtp_port,
        settings.mail_from,
        clock=clock,
        username=settings.smtp_username,
        password=settings.smtp_password.reveal() if settings.smtp_password else None,
        starttls=settings.smtp_security == "starttls",
        use_tls=settings.smtp_security == "tls",
        poll_interval=settings.mail_poll_seconds,
    )


def _key_id(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


async def start(
    settings: Settings, clock: Clock | None = None, *, reuse_port: bool = False
) -> Application:
    clock = clock or SystemClock()
    files = CaFiles(settings.data_dir)
    loaded = files.load(settings.passphrase())
    database = open_database(
        settings.database_url,
        readers=settings.database_readers,
        commit_delay=settings.database_commit_delay_ms / 1000,
    )
    issuance_store = SqlCertificateStore(database)
    # Spawned, not forked: a fork of a process running gRPC's threads is not safe.
    pkcs12_pool = ProcessPoolExecutor(
        max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn")
    )
    try:
        await asyncio.to_thread(migrate, database)
        factory = ClientCertificateFactory(
            SoftwareSigner(loaded.issuing_key),
            issuer_name=loaded.issuing.subject.public_bytes(),
            issuer_key_id=_key_id(loaded.issuing),
            profile=settings.client_profile,
        )
        issuance = IssuanceService(
            factory=factory,
            store=issuance_store,
            clock=clock,
            chain=(loaded.issuing, loaded.root),
            pkcs12_kdf_rounds=settings.pkcs12_kdf_rounds,
            pkcs12_executor=pkcs12_pool,
        )
        redis = connect_redis(settings.redis_url)
        lockouts = RedisLockoutStore(
            redis, settings.redis_prefix, lock_duration=timedelta(seconds=settings.lock_seconds)
        )
        passwords = Argon2Passwords(
            time_cost=settings.password_hash_time_cost, memory_kib=settings.password_hash_memory_kib
        )
        delivery = _mail_delivery(settings, database, clock) if settings.mail_worker else None
        accounts = SqlAccountStore(database, delivery.wake if delivery else None)
        code_key = settings.code_key.reveal().encode() if settings.code_key else files.code_key()
        feed = RevocationFeed(redis, f"{settings.redis_prefix}revocations")
        enrollment = EnrollmentService(
            accounts=accounts,
            certificates=issuance_store,
            lockouts=lockouts,
            codes_store=RedisCodeStore(redis, settings.redis_prefix),
            passwords=passwords,
            issuance=issuance,
            clock=clock,
            code_key=code_key,
            times=EnrollmentTimes(code_ttl=timedelta(seconds=settings.code_ttl_seconds)),
            user_changed=feed.publish_user_change,
        )
        account_service = AccountService(
            accounts=accounts,
            lockouts=lockouts,
            passwords=passwords,
            clock=clock,
            initial_password_ttl=timedelta(days=settings.initial_password_days),
            user_changed=feed.publish_user_change,
        )
        revocation = RevocationService(store=SqlRevocationStore(database), feed=feed, clock=clock)
        servicer = CertificateAuthorityServicer(
            issuance,
            clock,
            enrollment,
            account_service,
            SqlOutbox(database),
            revocation,
            SqlAuditLog(database),
        )
        server, port, health_servicer = build_server(
            servicer, loaded.grpc_server, settings.grpc_address, reuse_port=reuse_port
        )
        publisher = _crl_publisher(settings, loaded, database, clock)
        responder_files = await asyncio.to_thread(
            files.ocsp_responder, loaded, settings.passphrase(), clock.now()
        )
        responder = OcspResponder(
            signer=SoftwareSigner(responder_files.key),
            responder_certificate=responder_files.certificate_der,
            responder_key_id=_key_id(
                x509.load_der_x509_certificate(responder_files.certificate_der)
            ),
            issuer_name=loaded.issuing.subject.public_bytes(),
            issuer_public_key=loaded.issuing.public_key().public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            ),
            certificates=issuance_store,
            revocations=SqlRevocationStore(database),
            clock=clock,
            validity=timedelta(minutes=settings.ocsp_validity_minutes),
        )
        # Relying parties never see "no CRL yet": the first one exists before HTTP listens.
        await publisher.refresh()
        http = HttpServer()
        RelyingPartyEndpoints(
            publisher=publisher,
            clock=clock,
            crl_url=settings.client_profile.crl_url,
            delta_crl_url=settings.delta_crl_url,
            ca_issuers_url=settings.client_profile.ca_issuers_url,
            issuing_der=loaded.issuing.public_bytes(Encoding.DER),
            root_der=loaded.root.public_bytes(Encoding.DER),
        ).install(http, responder, settings.client_profile.ocsp_url)
        http_host, http_port = settings.http_address.rsplit(":", 1)
        bound_http_port = await http.start(http_host, int(http_port), reuse_port=reuse_port)
        await server.start()
    except BaseException:
        pkcs12_pool.shutdown(wait=False, cancel_futures=True)
        database.close()
        raise
    serving = health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set("", serving)
    await health_servicer.set(SERVICE_NAME, serving)
    feed.start()
    app = Application(
        database, server, port, health_servicer, redis, pkcs12_pool, feed, http, bound_http_port
    )
    app.background.append(asyncio.create_task(publisher.run(app.stopping, feed)))
    app.background.append(asyncio.create_task(responder.run(app.stopping, feed)))

    async def rotate_responder() -> None:
        current = await asyncio.to_thread(
            files.ocsp_responder, loaded, settings.passphrase(), clock.now()
        )
        certificate = x509.load_der_x509_certificate(current.certificate_der)
        responder.use_key(
            SoftwareSigner(current.key), current.certificate_der, _key_id(certificate)
        )

    app.background.append(
        asyncio.create_task(
            _every(3600, app.stopping, rotate_responder, "rotating the OCSP responder key")
        )
    )
    if delivery is not None:
        app.background.append(asyncio.create_task(delivery.run(app.stopping)))
        app.background.append(
            asyncio.create_task(
                _every(
                    settings.notice_interval_seconds,
                    app.stopping,
                    lambda: queue_certificate_notices(database, clock.now()),
                    "queueing certificate notices",
                )
            )
        )
    return app


async def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Runs until SIGINT or SIGTERM, then stops gracefully."""
    app = await start(settings, reuse_port=reuse_port)
    host = settings.grpc_address.rsplit(":", 1)[0]
    log.info("database: %s", app.database.description)
    http_host = settings.http_address.rsplit(":", 1)[0]
    print(
        f"ca-service: gRPC API (mTLS) listening on {host}:{app.port}; "
        f"HTTP (CRL, OCSP) on {http_host}:{app.http_port}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down")
    await app.stop()


def serve_workers(settings: Settings) -> int:
    """Runs ``settings.grpc_workers`` server processes on one port (SO_REUSEPORT)."""
    if settings.grpc_address.endswith(":0"):
        raise ConfigurationError("CA_GRPC_WORKERS > 1 needs an explicit port in CA_GRPC_ADDRESS")
    env = dict(
        os.environ,
        CA_GRPC_WORKERS="1",
        CA_DATA_DIR=str(settings.data_dir),
        CA_GRPC_ADDRESS=settings.grpc_address,
    )
    return supervise(
        [sys.executable, "-m", "ca_service.cli.service", "serve", "--reuse-port"],
        env,
        settings.grpc_workers,
        f"ca-service: gRPC API (mTLS) listening on {settings.grpc_address} "
        f"({settings.grpc_workers} worker processes)",
        "listening on",
    )
