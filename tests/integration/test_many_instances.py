"""Many instances, one truth: three ca-service processes and two gateways on one PostgreSQL
database and one Redis (its own redis-server), driven from threads through every process.

- issuance from every process: no serial twice, every certificate received is stored;
- a revocation made at any process is in force at both gateways within 1 s, and in the delta
  CRL every process serves within 2 s;
- wrong passwords sent to all processes at once are counted exactly (5 leave the ID open,
  the 6th locks it, once, with one lock mail);
- each renewal and expiry notice is sent once;
- CRL numbers served by each process only grow, and every CRL holds every revocation
  committed before it (its entries are a prefix of the revocations in commit order);
- one process (the lease holder) publishes the CRLs and scans for notices; killed with
  SIGKILL, its duties move to another process within a few seconds.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import grpc
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from redis.asyncio import Redis

from ca_service.adapters.redis.lockout import RedisLockoutStore
from ca_service.api import pb
from ca_service.client import api_error, secure_channel, stub
from ca_service.domain.lockout import FAILURES_TO_LOCK
from ca_service.errors import RedisUnavailable
from ca_service.shared.redis_peer import RedisPeer
from tests.gateway.gateway_stack import GatewayStack, start_gateway_stack
from tests.smtp_sink import SmtpSink
from tests.stack_support import new_org
from tests.support import create_user, make_csr, throwaway_redis

pytestmark = pytest.mark.serial

CAS = 3
ISSUING_THREADS_PER_CA = 4
CERTIFICATES_PER_THREAD = 12
REVOCATIONS = 9
LOCKED_USERS = 4
# The default CA_LEASE_SECONDS is 4, renewed every second: a dead holder's lease has run
# out after at most 4 s, and the next attempt of another process (each second) takes it.
HANDOVER_SECONDS = 6.0
RENEWAL_SUBJECT = "有効期限が近づいています"
EXPIRY_SUBJECT = "有効期限切れ"
LOCK_SUBJECT = "ロックのお知らせ"

KEY = ec.generate_private_key(ec.SECP256R1())
CSR = make_csr(key=KEY)


@dataclass
class Issued:
    serial: int
    der: bytes
    ca: int


@dataclass(frozen=True)
class SeenCrl:
    at: float
    ca: int
    kind: str
    number: int
    base_number: int | None
    serials: frozenset[int]


def _pid_of(holder: str) -> int:
    return int(holder.split(":")[1])


def _holders(url: str) -> dict[str, int]:
    """Live lease holders by lease name: the holder's process ID."""
    now_ms = int(time.time() * 1000)
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT name, holder FROM leases WHERE expires_at_ms > %s", (now_ms,)
        ).fetchall()
    return {name: _pid_of(holder) for name, holder in rows}


def _crl(der: bytes, at: float, ca: int, kind: str) -> SeenCrl:
    parsed = x509.load_der_x509_crl(der)
    number = parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    try:
        base = parsed.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
    except x509.ExtensionNotFound:
        base = None
    return SeenCrl(at, ca, kind, number, base, frozenset(e.serial_number for e in parsed))


class CrlWatcher:
    """Fetches the base and delta CRL of every ca-service process every 0.1 s."""

    def __init__(self, stack: GatewayStack) -> None:
        self.urls = [server.http for server in stack.ca.servers]
        self.seen: list[SeenCrl] = []
        self.dead: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for index, url in enumerate(self.urls):
                if index in self.dead:
                    continue
                for kind, path in (("delta", "issuing-delta.crl"), ("full", "issuing.crl")):
                    try:
                        with urllib.request.urlopen(f"{url}/crl/{path}", timeout=5) as answer:
                            der = answer.read()
                    except OSError:
                        continue  # a process being killed
                    self.seen.append(_crl(der, time.monotonic(), index, kind))
            self.stop.wait(0.1)

    def first_holding(self, ca: int, serial: int, after: float) -> float | None:
        for crl in list(self.seen):
            if crl.ca == ca and crl.at >= after and serial in crl.serials:
                return crl.at
        return None


class GatewayProbe:
    """A TLS client of one gateway presenting one certificate: the HTTP status of GET /."""

    def __init__(self, stack: GatewayStack, port: int, cert: Path, key: Path) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=str(stack.trust))
        self.context.load_cert_chain(str(cert), str(key))

    def status(self) -> int:
        connection = http.client.HTTPSConnection(
            "localhost", self.port, context=self.context, timeout=10
        )
        try:
            connection.request("GET", "/")
            return connection.getresponse().status
        finally:
            connection.close()


def _api(stack: GatewayStack, index: int, operator: bool = True) -> object:
    credential = stack.ca.operator if operator else stack.ca.gateway
    return stub(secure_channel(stack.ca.servers[index].address, credential))


def _issue(stack: GatewayStack, ca: int, users: list[str]) -> list[Issued]:
    api = _api(stack, ca)
    issued = []
    for user in users:
        answer = api.SignCsr(  # type: ignore[attr-defined]
            pb.SignCsrRequest(csr=CSR, user_id=user, override_renewal_window=True), timeout=30
        )
        issued.append(Issued(int(answer.certificate.serial_number, 16), answer.certificate.der, ca))
    return issued


def _wrong_password(stack: GatewayStack, ca: int, user: str) -> str:
    try:
        _api(stack, ca, operator=False).StartAuthentication(  # type: ignore[attr-defined]
            pb.StartAuthenticationRequest(user_id=user, password="Wrong-pass1!"), timeout=30
        )
    except grpc.RpcError as error:
        return api_error(error).reason
    return "accepted"


def _lockout_states(redis_url: str, prefix: str, users: list[str]) -> dict[str, tuple[int, int]]:
    """(failures, locks) per user, read from the Redis all processes share."""

    async def read() -> dict[str, tuple[int, int]]:
        client = Redis.from_url(redis_url)
        try:
            store = RedisLockoutStore(RedisPeer(client, error=RedisUnavailable), prefix)
            states = {user: await store.state(user) for user in users}
        finally:
            await client.aclose()
        return {user: (state.failures, state.locks) for user, state in states.items()}

    return asyncio.run(read())


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, what
        time.sleep(0.02)
    return time.monotonic() - started


def _published_lines(stack: GatewayStack, index: int) -> int:
    return len(re.findall(r"published (delta|base) CRL", stack.ca.logs[index].read_text()))


def _make_due(url: str, serials: dict[int, datetime]) -> None:
    """Moves certificates' notAfter so that their notice is due (the clock of the scan is
    real; nothing else reads notAfter from the store here)."""
    with psycopg.connect(url) as connection:
        for serial, not_after in serials.items():
            connection.execute(
                "UPDATE certificates SET not_after = %s WHERE serial = %s",
                (int(not_after.timestamp()), format(serial, "x")),
            )


@pytest.fixture
def many(tmp_path: Path, postgres_url: str, smtp: SmtpSink) -> Iterator[GatewayStack]:
    with throwaway_redis(tmp_path / "redis") as (redis_url, _pid):
        stack = start_gateway_stack(
            tmp_path / "stack",
            redis_url,
            smtp,
            ca_count=CAS,
            gateway_ca=1,
            CA_DATABASE_URL=postgres_url,
            CA_NOTICE_INTERVAL_SECONDS="1",
        )
        try:
            stack.start_gateway("gateway2", **stack.following(2))
            yield stack
        finally:
            stack.stop()


def test_three_cas_two_gateways_one_truth(
    many: GatewayStack, postgres_url: str, smtp: SmtpSink, tmp_path: Path
) -> None:
    stack = many
    pids = [server.process.pid for server in stack.ca.servers]  # type: ignore[union-attr]
    holders = _holders(postgres_url)
    # The first process to start took both leases; the gateways follow the other two.
    assert holders == {"crl-publisher": pids[0], "certificate-notices": pids[0]}, (holders, pids)

    watcher = CrlWatcher(stack)
    watcher.thread.start()
    try:
        _scenario(stack, watcher, postgres_url, smtp, tmp_path, pids)
    finally:
        watcher.stop.set()
        watcher.thread.join(10)


def _scenario(
    stack: GatewayStack,
    watcher: CrlWatcher,
    postgres_url: str,
    smtp: SmtpSink,
    tmp_path: Path,
    pids: list[int],
) -> None:
    threads = CAS * ISSUING_THREADS_PER_CA
    users = [f"many{i:03d}" for i in range(threads)]
    for user in users:
        create_user(stack.ca.servers[0].address, stack.ca.operator, user, "Many 株式会社")
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(
        KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    # -- issuance from every process, with revocations checked at both gateways meanwhile --
    first = [item for ca in range(CAS) for item in _issue(stack, ca, users[:REVOCATIONS])]
    to_revoke = first[:REVOCATIONS]
    revoked_at: dict[int, float] = {}
    gateway_delays: list[float] = []

    def revoke_all() -> None:
        for index, target in enumerate(to_revoke):
            cert = tmp_path / f"revoked{index}.pem"
            cert.write_bytes(
                x509.load_der_x509_certificate(target.der).public_bytes(serialization.Encoding.PEM)
            )
            probes = [GatewayProbe(stack, g.port, cert, key_path) for g in stack.gateways]
            assert all(probe.status() != 403 for probe in probes)
            _api(stack, index % CAS).RevokeCertificate(  # type: ignore[attr-defined]
                pb.RevokeCertificateRequest(serial_number=format(target.serial, "x")), timeout=30
            )
            revoked_at[target.serial] = time.monotonic()
            for probe in probes:
                gateway_delays.append(
                    _wait(lambda p=probe: p.status() == 403, 1.0, "revocation not in force in 1 s")
                )

    with ThreadPoolExecutor(threads + 1) as pool:
        revoking = pool.submit(revoke_all)
        issuing = [
            pool.submit(_issue, stack, index % CAS, [users[index]] * CERTIFICATES_PER_THREAD)
            for index in range(threads)
        ]
        issued = first + [item for future in issuing for item in future.result()]
        revoking.result()
    serials = [item.serial for item in issued]
    assert len(set(serials)) == len(serials) == len(first) + threads * CERTIFICATES_PER_THREAD
    assert {item.ca for item in issued} == set(range(CAS))
    with psycopg.connect(postgres_url) as connection:
        stored = {int(row[0], 16) for row in connection.execute("SELECT serial FROM certificates")}
    assert set(serials) <= stored
    # Measured from the return of RevokeCertificate, polled over new TLS connections.
    assert max(gateway_delays) < 1.0

    # -- exact lock counts: wrong passwords at every process at once ------------------------
    masters = [f"lock{i:03d}" for i in range(LOCKED_USERS)]
    emails = {master: new_org(stack.ca, smtp, master)[1] for master in masters}
    with ThreadPoolExecutor(LOCKED_USERS * (FAILURES_TO_LOCK - 1)) as pool:
        answers = list(
            pool.map(
                lambda job: _wrong_password(stack, job[0] % CAS, job[1]),
                [
                    (attempt, master)
                    for master in masters
                    for attempt in range(FAILURES_TO_LOCK - 1)
                ],
            )
        )
    assert set(answers) == {"INVALID_CREDENTIALS"}, answers
    states = _lockout_states(stack.ca.redis_url, stack.ca.prefix, masters)
    assert states == {master: (FAILURES_TO_LOCK - 1, 0) for master in masters}
    with ThreadPoolExecutor(LOCKED_USERS * CAS) as pool:
        answers = list(
            pool.map(
                lambda job: _wrong_password(stack, job[0], job[1]),
                [(ca, master) for master in masters for ca in range(CAS)],
            )
        )
    states = _lockout_states(stack.ca.redis_url, stack.ca.prefix, masters)
    assert states == {master: (0, 1) for master in masters}, states  # each locked once
    for master in masters:
        smtp.wait_for(
            lambda m, e=emails[master]: e in str(m["To"]) and LOCK_SUBJECT in str(m["Subject"])
        )

    # -- notices, once each ---------------------------------------------------------------
    noticed = [f"note{i:03d}" for i in range(7)]
    for user in noticed:
        create_user(stack.ca.servers[0].address, stack.ca.operator, user, "Notice 株式会社")
    certificates = {
        user: _issue(stack, index % CAS, [user])[0] for index, user in enumerate(noticed)
    }
    now = datetime.now(UTC)
    due = {user: now + timedelta(days=10) for user in noticed[:3]}  # renewal
    due.update({user: now - timedelta(days=3) for user in noticed[3:6]})  # expiry
    _make_due(postgres_url, {certificates[user].serial: at for user, at in due.items()})
    for user in noticed[:6]:
        subject = RENEWAL_SUBJECT if due[user] > now else EXPIRY_SUBJECT
        smtp.wait_for(lambda m, u=user, s=subject: _mail_is(m, u, s))

    # -- only the leader published; kill it ------------------------------------------------
    assert _published_lines(stack, 0) > 0
    assert _published_lines(stack, 1) == _published_lines(stack, 2) == 0
    published_before = _published_lines(stack, 1) + _published_lines(stack, 2)
    stack.ca.servers[0].kill()
    killed_at = time.monotonic()
    watcher.dead.add(0)

    def moved() -> bool:
        now_holders = _holders(postgres_url)
        return set(now_holders) == {"crl-publisher", "certificate-notices"} and all(
            pid in pids[1:] for pid in now_holders.values()
        )

    handover = _wait(moved, 15.0, "the duties did not move to another process")
    assert handover < HANDOVER_SECONDS, f"handover took {handover:.1f} s"
    new_leader = pids.index(_holders(postgres_url)["crl-publisher"])

    # The new leader publishes: a revocation at the other survivor reaches both CRLs.
    survivor = 1 if new_leader == 2 else 2
    late = _issue(stack, survivor, [users[0]])[0]
    _api(stack, survivor).RevokeCertificate(  # type: ignore[attr-defined]
        pb.RevokeCertificateRequest(serial_number=format(late.serial, "x")), timeout=30
    )
    revoked_at[late.serial] = time.monotonic()
    _wait(
        lambda: all(watcher.first_holding(ca, late.serial, killed_at) for ca in (1, 2)),
        2.0 + 0.5,
        "the new leader's CRL did not reach both survivors",
    )
    assert _published_lines(stack, new_leader) > 0
    assert _published_lines(stack, survivor) == published_before
    # And scans for notices: one more falls due.
    _make_due(
        postgres_url, {certificates[noticed[6]].serial: datetime.now(UTC) + timedelta(days=9)}
    )
    smtp.wait_for(lambda m: _mail_is(m, noticed[6], RENEWAL_SUBJECT))
    time.sleep(3)  # several more scans, by the new leader
    for user in noticed:
        assert len([m for m in smtp.messages if _mail_is(m, user, "有効期限")]) == 1, user
    for master in masters:
        assert len([m for m in smtp.messages if _mail_is(m, master, LOCK_SUBJECT)]) == 1

    crl_delay = _check_crls(watcher, postgres_url, revoked_at, killed_at)
    print(
        f"\n{len(issued)} certificates from {CAS} processes; revocation in force at both"
        f" gateways after at most {max(gateway_delays):.2f} s, in every served delta CRL after"
        f" at most {crl_delay:.2f} s; duties handed over {handover:.1f} s after SIGKILL"
    )


def _mail_is(message: EmailMessage, user: str, subject: str) -> bool:
    return f"{user}@example.jp" in str(message["To"]) and subject in str(message["Subject"])


def _check_crls(
    watcher: CrlWatcher, postgres_url: str, revoked_at: dict[int, float], killed_at: float
) -> float:
    """Checks the CRLs served; returns the longest time from a revocation to its CRL."""
    with psycopg.connect(postgres_url) as connection:
        order = [
            int(row[0], 16)
            for row in connection.execute("SELECT serial FROM revocations ORDER BY sequence")
        ]
    assert set(order) == set(revoked_at)
    position = {serial: index for index, serial in enumerate(order)}
    seen = list(watcher.seen)
    bases = {crl.number: crl for crl in seen if crl.kind == "full"}
    for ca in range(CAS):
        served = [crl for crl in seen if crl.ca == ca]
        for kind in ("full", "delta"):
            numbers = [crl.number for crl in served if crl.kind == kind]
            assert numbers == sorted(numbers), (ca, kind)  # never back to an older CRL
        for crl in served:
            if crl.kind != "delta":
                continue
            assert crl.base_number in bases
            held = crl.serials | bases[crl.base_number].serials
            # Commit order is sequence order: a CRL holding the n-th revocation holds the
            # ones before it too.
            assert held == set(order[: len(held)]), (
                ca,
                crl.number,
                sorted(position[s] for s in held),
            )
    # Every revocation was in the delta CRL of every live process within 2 s.
    longest = 0.0
    for serial, at in revoked_at.items():
        for ca in range(CAS):
            if ca == 0 and at > killed_at:
                continue
            shown = watcher.first_holding(ca, serial, 0)
            assert shown is not None and shown - at < 2.0, (ca, serial, shown and shown - at)
            longest = max(longest, shown - at)
    return longest
