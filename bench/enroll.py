#!/usr/bin/env python3
"""End-to-end enrollment latency (authenticate → code from mail → PKCS#12) over gRPC/mTLS.

Each run builds a fresh throw-away stack: a redis-server on a free loopback port (never the
shared 127.0.0.1:6379), an aiosmtpd SMTP sink, a CA in a temporary directory and ONE
``ca-service serve`` process (SQLite, mail worker polling every second). It issues a gateway
credential, creates an organisation (operator) and registers its master (gateway
RegisterMaster), creates N general users (gateway CreateUser acting as the master, then
ChangePassword: each replaces its given password with its own, SPEC A5), then
enrolls every user with C concurrent clients driving one shared grpc.aio channel (one
gateway, one HTTP/2 connection; ``--channel-per-client`` gives each client its own):

    StartAuthentication                                  timed
    wait for the user's code mail in the SMTP sink       NOT timed (mail transit + poll)
    VerifyCode                                           timed
    IssueCertificate(issuance_ticket, pkcs12_password)   timed

The latency of an enrollment is the sum of the three timed calls. Each run prints p50/p99
of that sum and of each step, the mean wait for the mail (informational), the server's CPU
per enrollment (utime+stime from /proc/<pid>/stat before/after the measured window divided
by the enrollments), and checks that a few of the PKCS#12 files open with
``openssl pkcs12 -passin env:...`` (not timed). The median of the runs is printed last,
followed by the target check "p99 < 300 ms excluding mail transit".

    .venv/bin/python bench/enroll.py [--users 200] [--clients 1] [--runs 3]
        [--warmup 2] [--check-pkcs12 3] [--channel-per-client]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from bench.issue import cpu_seconds, own_cpu_seconds  # noqa: E402
from ca_service.adapters.keystore import CaFiles  # noqa: E402
from ca_service.api import pb, pb_grpc  # noqa: E402
from ca_service.client import aio_secure_channel, api_error, stub  # noqa: E402
from ca_service.shared.credentials import ClientCredential  # noqa: E402
from tests.smtp_sink import SmtpSink, code_from  # noqa: E402
from tests.support import CaProcess, ca_env, init_ca, run, throwaway_redis, tool  # noqa: E402

TARGET_P99_MS = 300.0
MASTER_PASSWORD = "Mast3r-Pass!"
# What every bench user chooses at its initial registration (SPEC A5).
USER_PASSWORD = "Us3r-Chosen!"
CODE_SUBJECT = "認証コード"
MAIL_TIMEOUT_SECONDS = 30.0

T = TypeVar("T")


# -- throw-away redis-server ----------------------------------------------------------------


# -- the code mail ---------------------------------------------------------------------------


class CodeMail:
    """Hands each recipient's authentication-code mail from the SMTP sink to asyncio waiters.

    The sink collects in its own thread; new messages are indexed by recipient incrementally,
    so a poll costs O(new messages), not O(all messages)."""

    def __init__(self, sink: SmtpSink, poll_seconds: float = 0.005) -> None:
        self._sink = sink
        self._seen = 0
        self._codes: dict[str, list[str]] = {}
        self._poll = poll_seconds

    def _drain(self) -> None:
        with self._sink.lock:
            fresh: list[EmailMessage] = self._sink.messages[self._seen :]
            self._seen += len(fresh)
        for message in fresh:
            if CODE_SUBJECT in str(message["Subject"]):
                self._codes.setdefault(str(message["To"]), []).append(code_from(message))

    async def code_for(self, recipient: str) -> str:
        deadline = time.monotonic() + MAIL_TIMEOUT_SECONDS
        while True:
            self._drain()
            found = self._codes.get(recipient)
            if found:
                return found.pop(0)
            if time.monotonic() > deadline:
                raise RuntimeError(f"no code mail for {recipient} in {MAIL_TIMEOUT_SECONDS} s")
            await asyncio.sleep(self._poll)


# -- one stack -------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    password: str


@dataclass(frozen=True)
class Sample:
    start: float
    verify: float
    issue: float
    mail_wait: float

    @property
    def total(self) -> float:
        return self.start + self.verify + self.issue


@dataclass
class Enrolled:
    user: User
    pkcs12: bytes
    file_name: str


@dataclass
class RunResult:
    figures: dict[str, float]
    pkcs12_checked: int
    pkcs12_ok: int
    failures: list[str] = field(default_factory=list)


async def call(what: str, awaitable: Awaitable[T]) -> T:
    """Awaits a gRPC call; a failure names the call and the API's reason."""
    try:
        return await awaitable
    except grpc.aio.AioRpcError as error:
        problem = api_error(error)
        raise RuntimeError(
            f"{what}: {problem.code.name} {problem.reason} {problem.message}"
        ) from error


async def gather_limited(limit: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def prepare_users(
    address: str,
    operator: ClientCredential,
    gateway: ClientCredential,
    run_index: int,
    count: int,
    concurrency: int,
) -> list[User]:
    """An organisation, its master, and ``count`` general users created by the master."""
    async with (
        aio_secure_channel(address, operator) as operator_channel,
        aio_secure_channel(address, gateway) as gateway_channel,
    ):
        operator_api, gateway_api = stub(operator_channel), stub(gateway_channel)
        created = await call(
            "CreateOrganization",
            operator_api.CreateOrganization(
                pb.CreateOrganizationRequest(name=f"ベンチ{run_index}株式会社")
            ),
        )
        master = f"bm{run_index}aster"
        await call(
            "RegisterMaster",
            gateway_api.RegisterMaster(
                pb.RegisterMasterRequest(
                    organization_id=created.organization.organization_id,
                    initial_password=created.initial_password,
                    user_id=master,
                    password=MASTER_PASSWORD,
                    email=f"{master}@example.jp",
                )
            ),
        )

        def creator(index: int) -> Callable[[], Awaitable[User]]:
            # At most 5 consecutive digits: code_from() takes the first 6-digit run of the
            # body, which also names the user.
            user_id = f"b{run_index}u{index:05d}"
            email = f"{user_id}@example.jp"

            async def create() -> User:
                made = await call(
                    "CreateUser",
                    gateway_api.CreateUser(
                        pb.CreateUserRequest(acting_user_id=master, user_id=user_id, email=email)
                    ),
                )
                # 一般ユーザーの初期登録: the given password opens no issuance (SPEC A5).
                await call(
                    "ChangePassword",
                    gateway_api.ChangePassword(
                        pb.ChangePasswordRequest(
                            user_id=user_id,
                            current_password=made.initial_password,
                            new_password=USER_PASSWORD,
                        )
                    ),
                )
                return User(user_id, email, USER_PASSWORD)

            return create

        return await gather_limited(concurrency, [creator(i) for i in range(count)])


async def enroll(
    gateway: pb_grpc.CertificateAuthorityStub, mail: CodeMail, user: User
) -> tuple[Sample, Enrolled]:
    started_at = time.perf_counter()
    started = await call(
        "StartAuthentication",
        gateway.StartAuthentication(
            pb.StartAuthenticationRequest(user_id=user.user_id, password=user.password)
        ),
    )
    start = time.perf_counter() - started_at

    waited_at = time.perf_counter()
    code = await mail.code_for(user.email)
    mail_wait = time.perf_counter() - waited_at

    verified_at = time.perf_counter()
    verified = await call(
        "VerifyCode",
        gateway.VerifyCode(pb.VerifyCodeRequest(session_handle=started.session_handle, code=code)),
    )
    verify = time.perf_counter() - verified_at

    issued_at = time.perf_counter()
    issued = await call(
        "IssueCertificate",
        gateway.IssueCertificate(
            pb.IssueCertificateRequest(
                issuance_ticket=verified.issuance_ticket, pkcs12_password=user.password
            )
        ),
    )
    issue = time.perf_counter() - issued_at
    return Sample(start, verify, issue, mail_wait), Enrolled(user, issued.pkcs12, issued.file_name)


async def drive(
    server: CaProcess,
    gateway: ClientCredential,
    mail: CodeMail,
    users: list[User],
    warmup: list[User],
    clients: int,
    channel_per_client: bool,
    redis_pid: int,
) -> tuple[list[Sample], list[Enrolled], dict[str, float]]:
    assert server.process is not None
    channels = [
        aio_secure_channel(server.address, gateway)
        for _ in range(clients if channel_per_client else 1)
    ]
    try:
        apis = [stub(channel) for channel in channels]
        for api in apis:  # connect (TLS handshake) before measuring
            await call("GetCaChain", api.GetCaChain(pb.GetCaChainRequest()))
        for user in warmup:  # first use of every code path, not measured
            await enroll(apis[0], mail, user)

        queue: asyncio.Queue[User] = asyncio.Queue()
        for user in users:
            queue.put_nowait(user)
        samples: list[Sample] = []
        enrolled: list[Enrolled] = []

        async def client(index: int) -> None:
            api = apis[index % len(apis)]
            while True:
                try:
                    user = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                sample, result = await enroll(api, mail, user)
                samples.append(sample)
                enrolled.append(result)

        server_before = cpu_seconds(server.process.pid)
        redis_before = cpu_seconds(redis_pid)
        own_before = own_cpu_seconds()
        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - began
        extra = {
            "elapsed_s": elapsed,
            "server_cpu_s": cpu_seconds(server.process.pid) - server_before,
            "redis_cpu_s": cpu_seconds(redis_pid) - redis_before,
            "own_cpu_s": own_cpu_seconds() - own_before,
        }
    finally:
        for channel in channels:
            await channel.close(None)
    return samples, enrolled, extra


def check_pkcs12(workdir: Path, enrolled: Sequence[Enrolled]) -> tuple[int, list[str]]:
    """Opens each PKCS#12 with openssl and the login password; returns (ok, problems)."""
    ok, problems = 0, []
    for item in enrolled:
        path = workdir / item.file_name
        path.write_bytes(item.pkcs12)
        result = run(
            ["openssl", "pkcs12", "-in", str(path), "-passin", "env:P12_PASSWORD", "-nodes"],
            {"P12_PASSWORD": item.user.password, "PATH": "/usr/bin:/bin"},
            check=False,
        )
        text = result.stdout.replace(" = ", "=")
        if (
            result.returncode == 0
            and f"CN={item.user.user_id}" in text
            and "PRIVATE KEY" in text
            and "BEGIN CERTIFICATE" in text
        ):
            ok += 1
        else:
            problems.append(f"{item.file_name}: rc {result.returncode} {result.stderr.strip()}")
    return ok, problems


def p99(values: Sequence[float]) -> float:
    """Linear interpolation between the samples (numpy's default): never above the maximum,
    unlike the default "exclusive" method of statistics.quantiles with few samples."""
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def ms(values: Sequence[float], quantile: str) -> float:
    if quantile == "p50":
        return statistics.median(values) * 1000
    return p99(values) * 1000


def one_run(args: argparse.Namespace, workdir: Path, index: int) -> RunResult:
    run_dir = workdir / f"run{index}"
    data_dir = run_dir / "ca"
    run_dir.mkdir()
    sink = SmtpSink().start()
    server: CaProcess | None = None
    try:
        with throwaway_redis(run_dir) as (redis_url, redis_pid):
            init_ca(data_dir)
            env = ca_env(
                data_dir,
                CA_REDIS_URL=redis_url,
                CA_SMTP_PORT=str(sink.port),
                CA_MAIL_POLL_SECONDS="1",
                CA_LOG_LEVEL="WARNING",
            )
            run([tool("ca-service"), "credential", "--name", "gw", "--role", "gateway"], env)
            files = CaFiles(data_dir)
            gateway, operator = files.client_credential("gw"), files.client_credential("operator")
            server = CaProcess(data_dir, env, run_dir / "ca-service.log").start()

            setup_started = time.perf_counter()
            everyone = asyncio.run(
                prepare_users(
                    server.address,
                    operator,
                    gateway,
                    index + 1,
                    args.users + args.warmup,
                    max(args.clients, 2),
                )
            )
            setup = time.perf_counter() - setup_started
            warmup, users = everyone[: args.warmup], everyone[args.warmup :]
            mail = CodeMail(sink)
            samples, enrolled, extra = asyncio.run(
                drive(
                    server,
                    gateway,
                    mail,
                    users,
                    warmup,
                    args.clients,
                    args.channel_per_client,
                    redis_pid,
                )
            )
    except Exception:
        if server is not None:
            log = server.log_path
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            print(f"ca-service log (tail):\n{tail}", file=sys.stderr)
        raise
    finally:
        if server is not None:
            server.stop()
        sink.stop()

    done = len(samples)
    checked = enrolled[: args.check_pkcs12]
    ok, problems = check_pkcs12(run_dir, checked)
    totals = [s.total for s in samples]
    figures = {
        "enrollments": float(done),
        "setup_s": setup,
        "elapsed_s": extra["elapsed_s"],
        "rate": done / extra["elapsed_s"],
        "p50_ms": ms(totals, "p50"),
        "p99_ms": ms(totals, "p99"),
        "max_ms": max(totals) * 1000,
        "start_p50_ms": ms([s.start for s in samples], "p50"),
        "start_p99_ms": ms([s.start for s in samples], "p99"),
        "verify_p50_ms": ms([s.verify for s in samples], "p50"),
        "verify_p99_ms": ms([s.verify for s in samples], "p99"),
        "issue_p50_ms": ms([s.issue for s in samples], "p50"),
        "issue_p99_ms": ms([s.issue for s in samples], "p99"),
        "mail_wait_mean_ms": statistics.fmean(s.mail_wait for s in samples) * 1000,
        "with_mail_p50_ms": ms([s.total + s.mail_wait for s in samples], "p50"),
        "server_cpu_ms": extra["server_cpu_s"] / done * 1000,
        "redis_cpu_ms": extra["redis_cpu_s"] / done * 1000,
        "own_cpu_ms": extra["own_cpu_s"] / done * 1000,
    }
    return RunResult(figures, len(checked), ok, problems)


STEPS = (
    ("StartAuthentication", "start"),
    ("VerifyCode", "verify"),
    ("IssueCertificate", "issue"),
)


def describe(label: str, f: dict[str, float]) -> str:
    return (
        f"{label}: {f['enrollments']:.0f} enrollments in {f['elapsed_s']:.1f} s "
        f"({f['rate']:.1f}/s; setup {f['setup_s']:.1f} s)\n"
        f"  latency excl. mail  p50 {f['p50_ms']:6.1f} ms  p99 {f['p99_ms']:6.1f} ms  "
        f"max {f['max_ms']:6.1f} ms\n"
        + "".join(
            f"  {name:<19} p50 {f[key + '_p50_ms']:6.1f} ms  p99 {f[key + '_p99_ms']:6.1f} ms\n"
            for name, key in STEPS
        )
        + f"  mail wait (not timed, informational) mean {f['mail_wait_mean_ms']:6.0f} ms; "
        f"end to end incl. mail p50 {f['with_mail_p50_ms']:6.0f} ms\n"
        f"  CPU per enrollment: ca-service {f['server_cpu_ms']:5.1f} ms, "
        f"redis {f['redis_cpu_ms']:4.2f} ms, "
        f"load generator + SMTP sink {f['own_cpu_ms']:5.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="enrollments per run")
    parser.add_argument(
        "--clients",
        type=int,
        default=1,
        help="concurrent enrollments (1: the latency one user sees)",
    )
    parser.add_argument("--runs", type=int, default=3, help="each on a fresh stack")
    parser.add_argument(
        "--warmup", type=int, default=2, help="extra users enrolled before measuring"
    )
    parser.add_argument(
        "--check-pkcs12", type=int, default=3, help="PKCS#12 files opened with openssl per run"
    )
    parser.add_argument(
        "--channel-per-client",
        action="store_true",
        help="one gRPC channel per client (default: all clients share one channel)",
    )
    args = parser.parse_args()
    if args.users < 2 or args.clients < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("need --users >= 2, --clients >= 1, --runs >= 1, --warmup >= 0")

    channels = "one channel per client" if args.channel_per_client else "one shared channel"
    print(
        "Enrollment over mTLS (StartAuthentication → code mail → VerifyCode → "
        f"IssueCertificate/PKCS#12): {args.users} users per run, {args.clients} concurrent "
        f"clients on {channels} (grpc.aio), 1 ca-service process (SQLite), "
        "mail worker woken on enqueue, "
        f"{os.cpu_count()} CPUs; redis-server, SMTP sink and load generator on the same "
        "machine. Latency = sum of the three calls, mail transit excluded.",
        flush=True,
    )
    results: list[RunResult] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-enroll-") as workdir:
        for index in range(args.runs):
            result = one_run(args, Path(workdir), index)
            results.append(result)
            print(describe(f"run {index + 1}", result.figures), flush=True)
            print(
                f"  PKCS#12 opened by openssl pkcs12 -passin env:P12_PASSWORD: "
                f"{result.pkcs12_ok}/{result.pkcs12_checked}",
                flush=True,
            )
            for problem in result.failures:
                print(f"  PKCS#12 problem: {problem}", flush=True)
    keys = results[0].figures.keys()
    median = {key: statistics.median(r.figures[key] for r in results) for key in keys}
    print(describe(f"median of {len(results)} runs", median))
    print(f"bench wall time {time.perf_counter() - began:.0f} s")
    checked = sum(r.pkcs12_checked for r in results)
    opened = sum(r.pkcs12_ok for r in results)
    print(f"PKCS#12 sanity check: {opened}/{checked} opened with the login password")
    verdict = "MET" if median["p99_ms"] < TARGET_P99_MS else "NOT MET"
    print(
        f"target p99 < {TARGET_P99_MS:.0f} ms excluding mail transit: {verdict} "
        f"(p99 = {median['p99_ms']:.1f} ms)"
    )
    return 0 if opened == checked else 1


if __name__ == "__main__":
    sys.exit(main())
