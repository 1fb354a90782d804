"""Wiring only: settings → stores (adapters) → services → servers.

``start`` reads top-down: :func:`_open_stores` builds every adapter, :func:`_build_services`
the services on them (which know only the ports), :func:`_start_servers` the gRPC and HTTP
servers, and :func:`_background` the periodic work."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca_service.adapters.grpc.health import HealthMonitor, Peer
from ca_service.adapters.grpc.server import SERVICE_NAME, HealthServicer, build_server
from ca_service.adapters.grpc.servicer import CertificateAuthorityServicer
from ca_service.adapters.http.relying_party import RelyingPartyEndpoints
from ca_service.adapters.http.router import Router, relying_party_server
from ca_service.adapters.keystore import CaFiles, LoadedCa, open_ca_files, points_at
from ca_service.adapters.mail import templates as japanese_mail
from ca_service.adapters.mail.outbox import SqlOutbox
from ca_service.adapters.mail.worker import MailDelivery
from ca_service.adapters.passwords import Argon2Passwords, PasswordHashing
from ca_service.adapters.redis.client import connect as connect_redis
from ca_service.adapters.redis.codes import RedisCodeStore
from ca_service.adapters.redis.lockout import RedisLockoutStore
from ca_service.adapters.redis.resend import RedisResendLimiter
from ca_service.adapters.redis.revocation_feed import RedisRevocationFeed
from ca_service.adapters.sql.accounts import SqlAccountStore
from ca_service.adapters.sql.audit import SqlAuditLog
from ca_service.adapters.sql.certificates import SqlCertificateStore
from ca_service.adapters.sql.crls import SqlCrlStore
from ca_service.adapters.sql.database import Database, open_database
from ca_service.adapters.sql.email_verifications import SqlEmailVerificationStore
from ca_service.adapters.sql.leases import SqlLeaseStore
from ca_service.adapters.sql.migrations import migrate
from ca_service.adapters.sql.notices import SqlNoticeStore
from ca_service.adapters.sql.revocations import SqlRevocationStore
from ca_service.config import Settings, hex_key
from ca_service.domain.crl_schedule import CrlSchedule
from ca_service.domain.resend import ResendLimits
from ca_service.errors import ConfigurationError, Unavailable
from ca_service.pki.certificates import ClientCertificateFactory
from ca_service.ports import Clock
from ca_service.services.account_issuance import AccountIssuance
from ca_service.services.accounts import AccountService
from ca_service.services.arl import RootCrlKeeper
from ca_service.services.crl import CrlPublisher
from ca_service.services.email_verification import EmailVerificationService
from ca_service.services.enrollment import EnrollmentService, EnrollmentTimes
from ca_service.services.issuance import IssuanceService
from ca_service.services.leases import DutyLease
from ca_service.services.notices import CertificateNotices
from ca_service.services.ocsp import OcspResponder
from ca_service.services.oversight import AuditTrail, MailListing
from ca_service.services.revocation import RevocationService
from ca_service.services.user_revocation import UserRevocation
from ca_service.shared.clock import SystemClock
from ca_service.shared.http.server import HttpServer
from ca_service.shared.lifetime import process_pool
from ca_service.shared.net.guard import process_guard
from ca_service.shared.redis_peer import RedisPeer
from ca_service.shared.workers import supervise

__all__ = ["Application", "serve", "start"]

log = logging.getLogger(__name__)


@dataclass
class Application:
    database: Database
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    redis: RedisPeer
    pkcs12_pool: ProcessPoolExecutor
    feed: RedisRevocationFeed
    http: HttpServer
    http_port: int
    background: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Run last by stop(): e.g. logging out of the PKCS#11 token.
    closing: list[Callable[[], None]] = field(default_factory=list)

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
        for close in self.closing:
            close()


async def _every(
    interval: float, stop: asyncio.Event, work: Callable[[], Awaitable[object]], what: str
) -> None:
    """Runs ``work`` now and then every ``interval`` seconds until ``stop``; a failure is
    logged and retried at the next interval, never fatal."""
    while not stop.is_set():
        try:
            await work()
        except Unavailable:
            pass  # the outage is logged once, by the peer's availability
        except Exception as exc:
            log.warning("%s failed: %s", what, type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


@dataclass
class _Stores:
    """Every adapter a running ca-service uses; the services see them as ports."""

    database: Database
    redis: RedisPeer
    certificates: SqlCertificateStore
    accounts: SqlAccountStore
    email_links: SqlEmailVerificationStore
    lockouts: RedisLockoutStore
    codes: RedisCodeStore
    resends: RedisResendLimiter
    revocations: SqlRevocationStore
    crls: SqlCrlStore
    notices: SqlNoticeStore
    outbox: SqlOutbox
    leases: SqlLeaseStore
    audit: SqlAuditLog
    feed: RedisRevocationFeed
    passwords: PasswordHashing
    delivery: MailDelivery | None


@dataclass
class _Services:
    issuance: IssuanceService
    enrollment: EnrollmentService
    accounts: AccountService
    email: EmailVerificationService
    account_issuance: AccountIssuance
    revocation: RevocationService
    mail: MailListing
    audit: AuditTrail
    notices: CertificateNotices
    publisher: CrlPublisher
    responder: OcspResponder
    root_crl: RootCrlKeeper
    # One process at a time publishes the CRLs and scans for notices (services/leases.py).
    crl_lease: DutyLease
    notice_lease: DutyLease


@dataclass
class _Servers:
    grpc: grpc.aio.Server
    port: int
    health: HealthServicer
    http: HttpServer
    http_port: int


def _key_id(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


# -- stores -------------------------------------------------------------------------------


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


def _password_hashing(settings: Settings) -> PasswordHashing:
    return PasswordHashing(
        Argon2Passwords(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
        ),
        concurrency=settings.password_hash_concurrency,
        queue=settings.password_hash_queue,
    )


def _open_stores(settings: Settings, database: Database, clock: Clock) -> _Stores:
    """The adapters over an open (and migrated) database and a new Redis connection."""
    redis = connect_redis(settings.redis_url)
    prefix = settings.redis_prefix
    delivery = _mail_delivery(settings, database, clock) if settings.mail_worker else None
    return _Stores(
        database=database,
        redis=redis,
        certificates=SqlCertificateStore(database),
        accounts=SqlAccountStore(database, delivery.wake if delivery else None),
        email_links=SqlEmailVerificationStore(database, delivery.wake if delivery else None),
        lockouts=RedisLockoutStore(
            redis, prefix, lock_duration=timedelta(seconds=settings.lock_seconds)
        ),
        codes=RedisCodeStore(redis, prefix),
        resends=RedisResendLimiter(
            redis,
            prefix,
            ResendLimits(interval=timedelta(seconds=settings.resend_interval_seconds)),
        ),
        revocations=SqlRevocationStore(database),
        crls=SqlCrlStore(database),
        notices=SqlNoticeStore(database),
        outbox=SqlOutbox(database),
        leases=SqlLeaseStore(database),
        audit=SqlAuditLog(database),
        feed=RedisRevocationFeed(redis, f"{prefix}revocations"),
        passwords=_password_hashing(settings),
        delivery=delivery,
    )


# -- services -----------------------------------------------------------------------------


def _issuance(
    settings: Settings,
    loaded: LoadedCa,
    stores: _Stores,
    clock: Clock,
    pkcs12_pool: ProcessPoolExecutor,
) -> IssuanceService:
    factory = ClientCertificateFactory(
        loaded.issuing_signer,
        issuer_name=loaded.issuing.subject.public_bytes(),
        issuer_key_id=_key_id(loaded.issuing),
        profile=settings.client_profile,
    )
    return IssuanceService(
        factory=factory,
        store=stores.certificates,
        clock=clock,
        chain=(loaded.issuing, loaded.root),
        pkcs12_kdf_rounds=settings.pkcs12_kdf_rounds,
        pkcs12_executor=pkcs12_pool,
    )


def _crl_publisher(
    settings: Settings, loaded: LoadedCa, stores: _Stores, clock: Clock, lease: DutyLease
) -> CrlPublisher:
    try:
        schedule = CrlSchedule(
            validity=timedelta(hours=settings.crl_validity_hours),
            delta_validity=timedelta(minutes=settings.crl_delta_validity_minutes),
            interval=timedelta(minutes=settings.crl_interval_minutes),
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"CA_CRL_INTERVAL_MINUTES, CA_CRL_DELTA_VALIDITY_MINUTES, CA_CRL_VALIDITY_HOURS: {exc}"
        ) from None
    return CrlPublisher(
        store=stores.crls,
        signer=loaded.issuing_signer,
        issuer_name=loaded.issuing.subject.public_bytes(),
        issuer_key_id=_key_id(loaded.issuing),
        clock=clock,
        schedule=schedule,
        freshest_crl_url=settings.delta_crl_url,
        # Only the leader publishes, so spreading processes woken together is moot: a short
        # pause lets a burst of revocations end.
        debounce=0.25,
        leading=lambda: lease.held,
    )


async def _ocsp_responder(
    settings: Settings, files: CaFiles, loaded: LoadedCa, stores: _Stores, clock: Clock
) -> OcspResponder:
    responder_files = await asyncio.to_thread(
        files.ocsp_responder, loaded, settings.passphrase(), clock.now()
    )
    return OcspResponder(
        signer=responder_files.signer,
        responder_certificate=responder_files.certificate_der,
        responder_key_id=_key_id(x509.load_der_x509_certificate(responder_files.certificate_der)),
        issuer_name=loaded.issuing.subject.public_bytes(),
        issuer_public_key=loaded.issuing.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        ),
        certificates=stores.certificates,
        revocations=stores.revocations,
        clock=clock,
        validity=timedelta(minutes=settings.ocsp_validity_minutes),
        cache_bytes=settings.ocsp_cache_bytes,
    )


def _root_crl_keeper(settings: Settings, files: CaFiles, clock: Clock) -> RootCrlKeeper:
    validity = timedelta(days=settings.arl_validity_days)
    passphrase = settings.passphrase()
    return RootCrlKeeper(lambda now: files.arl(passphrase, now, validity), clock, validity)


async def _build_services(
    settings: Settings,
    files: CaFiles,
    loaded: LoadedCa,
    stores: _Stores,
    clock: Clock,
    pkcs12_pool: ProcessPoolExecutor,
) -> _Services:
    issuance = _issuance(settings, loaded, stores, clock, pkcs12_pool)
    # host:pid:random: unique per process start, and says where the holder runs.
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    ttl = timedelta(seconds=settings.lease_seconds)
    crl_lease = DutyLease(stores.leases, "crl-publisher", holder, clock, ttl)
    notice_lease = DutyLease(stores.leases, "certificate-notices", holder, clock, ttl)
    code_key = hex_key(settings.code_key.reveal()) if settings.code_key else files.code_key()
    user_changed = stores.feed.publish_user_change
    return _Services(
        issuance=issuance,
        enrollment=EnrollmentService(
            accounts=stores.accounts,
            certificates=stores.certificates,
            lockouts=stores.lockouts,
            codes_store=stores.codes,
            passwords=stores.passwords,
            templates=japanese_mail,
            issuance=issuance,
            clock=clock,
            code_key=code_key,
            times=EnrollmentTimes(code_ttl=timedelta(seconds=settings.code_ttl_seconds)),
            user_changed=user_changed,
            resends=stores.resends,
        ),
        accounts=AccountService(
            accounts=stores.accounts,
            lockouts=stores.lockouts,
            passwords=stores.passwords,
            templates=japanese_mail,
            clock=clock,
            initial_password_ttl=timedelta(days=settings.initial_password_days),
            user_changed=user_changed,
            certificates=stores.certificates,
        ),
        email=EmailVerificationService(
            links=stores.email_links,
            accounts=stores.accounts,
            templates=japanese_mail,
            clock=clock,
            user_changed=user_changed,
        ),
        account_issuance=AccountIssuance(
            accounts=stores.accounts,
            certificates=stores.certificates,
            issuance=issuance,
            clock=clock,
        ),
        revocation=RevocationService(store=stores.revocations, feed=stores.feed, clock=clock),
        mail=MailListing(stores.outbox),
        audit=AuditTrail(stores.audit),
        notices=CertificateNotices(store=stores.notices, templates=japanese_mail),
        publisher=_crl_publisher(settings, loaded, stores, clock, crl_lease),
        responder=await _ocsp_responder(settings, files, loaded, stores, clock),
        root_crl=_root_crl_keeper(settings, files, clock),
        crl_lease=crl_lease,
        notice_lease=notice_lease,
    )


# -- servers ------------------------------------------------------------------------------


def _warn_if_issuing_lacks_urls(settings: Settings, loaded: LoadedCa) -> None:
    if not points_at(loaded.issuing, settings.issuing_urls):
        log.warning(
            "the issuing CA certificate does not name the root CRL %s and the root certificate "
            "%s: relying parties that check the whole path (Java, Windows, pyhanko) cannot "
            "validate it; run `ca-service upgrade-issuing` and restart",
            settings.root_crl_url,
            settings.root_ca_issuers_url,
        )


def _relying_party_http(
    settings: Settings, loaded: LoadedCa, services: _Services, clock: Clock
) -> HttpServer:
    router = Router()
    http = relying_party_server(
        router,
        process_guard(
            "ca-service HTTP",
            max_connections=settings.http_max_connections,
            reserve=settings.descriptor_reserve,
            head_timeout=settings.http_head_timeout,
        ),
    )
    RelyingPartyEndpoints(
        publisher=services.publisher,
        root_crl=lambda: services.root_crl.current,
        clock=clock,
        crl_url=settings.client_profile.crl_url,
        delta_crl_url=settings.delta_crl_url,
        root_crl_url=settings.root_crl_url,
        ca_issuers_url=settings.client_profile.ca_issuers_url,
        root_ca_issuers_url=settings.root_ca_issuers_url,
        issuing_der=loaded.issuing.public_bytes(Encoding.DER),
        root_der=loaded.root.public_bytes(Encoding.DER),
    ).install(router, services.responder, settings.client_profile.ocsp_url)
    return http


async def _start_servers(
    settings: Settings,
    loaded: LoadedCa,
    services: _Services,
    clock: Clock,
    *,
    reuse_port: bool,
) -> _Servers:
    """The gRPC API and the relying parties' HTTP port, listening; the first CRLs exist
    before HTTP listens, so relying parties never see "no CRL yet"."""
    servicer = CertificateAuthorityServicer(
        services.issuance,
        clock,
        services.enrollment,
        services.accounts,
        services.mail,
        services.revocation,
        services.audit,
        services.account_issuance,
        rules=settings.rules,
        email=services.email,
        user_revocation=UserRevocation(accounts=services.accounts, revocation=services.revocation),
    )
    server, port, health = build_server(
        servicer, loaded.grpc_server, settings.grpc_address, reuse_port=reuse_port
    )
    # A process that finds the CRL lease free publishes what is due before it serves.
    await services.crl_lease.try_acquire()
    await services.publisher.refresh()
    await services.root_crl.refresh()
    _warn_if_issuing_lacks_urls(settings, loaded)
    http = _relying_party_http(settings, loaded, services, clock)
    http_host, http_port = settings.http_address.rsplit(":", 1)
    try:
        bound_http_port = await http.start(http_host, int(http_port), reuse_port=reuse_port)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {settings.http_address} (CRL/OCSP): {exc.strerror or exc}"
        ) from None
    await server.start()
    # What start-up made lives as long as the process: out of the collector's sight, so
    # that its full collections under load stay short.
    gc.freeze()
    return _Servers(server, port, health, http, bound_http_port)


# -- background work ------------------------------------------------------------------------


def _background(
    app: Application,
    settings: Settings,
    files: CaFiles,
    loaded: LoadedCa,
    stores: _Stores,
    services: _Services,
    monitor: HealthMonitor,
    clock: Clock,
) -> None:
    """Starts the periodic work; each task ends when ``app.stopping`` is set."""
    responder = services.responder

    async def rotate_responder() -> None:
        current = await asyncio.to_thread(
            files.ocsp_responder, loaded, settings.passphrase(), clock.now()
        )
        certificate = x509.load_der_x509_certificate(current.certificate_der)
        responder.use_key(current.signer, current.certificate_der, _key_id(certificate))

    work: list[Awaitable[None]] = [
        monitor.run(app.stopping),
        services.crl_lease.run(app.stopping),
        services.publisher.run(app.stopping, stores.feed),
        responder.run(app.stopping, stores.feed),
        # Cheap unless due (a small file read): picks up `ca-service sign-arl` within a
        # minute too.
        _every(60, app.stopping, services.root_crl.refresh, "keeping the root CRL current"),
        _every(3600, app.stopping, rotate_responder, "rotating the OCSP responder key"),
    ]
    if stores.delivery is not None:
        # Every mail worker delivers (a row is claimed by one of them: outbox.claim), so
        # that mail queued by this process leaves at once (MailDelivery.wake); one of them
        # at a time scans for notices.
        work.append(stores.delivery.run(app.stopping))
        work.append(services.notice_lease.run(app.stopping))
        work.append(
            services.notice_lease.every(
                settings.notice_interval_seconds,
                app.stopping,
                lambda: services.notices.queue_due(clock.now()),
                "queueing certificate notices",
            )
        )
    app.background.extend(asyncio.ensure_future(each) for each in work)


async def start(
    settings: Settings, clock: Clock | None = None, *, reuse_port: bool = False
) -> Application:
    clock = clock or SystemClock()
    files = open_ca_files(settings.data_dir, settings.pkcs11)
    loaded = files.load(settings.passphrase())
    database = open_database(
        settings.database_url,
        readers=settings.database_readers,
        commit_delay=settings.database_commit_delay_ms / 1000,
    )
    # Its workers end with this process, even when it is killed (ca_service.shared.lifetime).
    pkcs12_pool = process_pool(os.cpu_count() or 1)
    try:
        await asyncio.to_thread(migrate, database)
        stores = _open_stores(settings, database, clock)
        services = await _build_services(settings, files, loaded, stores, clock, pkcs12_pool)
        servers = await _start_servers(settings, loaded, services, clock, reuse_port=reuse_port)
    except BaseException:
        pkcs12_pool.shutdown(wait=False, cancel_futures=True)
        database.close()
        if files.token is not None:
            files.token.token.close()
        raise
    # NOT_SERVING while the SQL store or Redis does not answer (probed twice a second).
    monitor = HealthMonitor(
        servers.health,
        ("", SERVICE_NAME),
        (
            Peer(database.availability, database.ping),
            Peer(stores.redis.availability, stores.redis.ping),
        ),
    )
    await monitor.check()
    stores.feed.start()
    app = Application(
        database,
        servers.grpc,
        servers.port,
        servers.health,
        stores.redis,
        pkcs12_pool,
        stores.feed,
        servers.http,
        servers.http_port,
    )
    if files.token is not None:
        app.closing.append(files.token.token.close)
    _background(app, settings, files, loaded, stores, services, monitor, clock)
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
