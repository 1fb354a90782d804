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
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STATE = ROOT / ".stack"
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


def up() -> int:
    ensure_venv("")
    env = _demo_env()
    data_dir = Path(env["CA_DATA_DIR"])
    if not (data_dir / "issuing" / "ca.pem").exists():
        _say(f"creating a new CA in {data_dir}")
        subprocess.run([str(BIN / "ca-service"), "init"], env=env, check=True)
    server = subprocess.Popen(
        [str(BIN / "ca-service"), "serve"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    first = server.stdout.readline()
    if server.poll() is not None or "listening" not in first:
        server.wait()
        return server.returncode or 1
    print(first.rstrip(), flush=True)
    activate = f"CA_DATA_DIR={data_dir} CA_GRPC_ADDRESS={env['CA_GRPC_ADDRESS']}"
    print(
        f"""
The CA is running. In another terminal, from {ROOT}:

  export {activate}
  .venv/bin/ca-admin ca chain                      # the issuing and root CA certificates
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
      -keyout user.key -subj /CN=x -out user.csr
  .venv/bin/ca-admin cert sign --csr user.csr --user taro0001 --org 'Example Co' --out user.pem
  .venv/bin/ca-admin cert issue --user taro0001 --org 'Example Co' --out-dir .   # PKCS#12
  .venv/bin/ca-admin cert list --user taro0001

State lives in {STATE} (delete it to start from scratch). Press Ctrl-C to stop.
""",
        flush=True,
    )
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        return 0


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
