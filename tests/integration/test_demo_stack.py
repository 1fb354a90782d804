"""The README's first command: `python3 stack.py up` brings up the CA with a real Redis and
an SMTP sink whose mail the user can read, and stops everything on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509

from tests.processes import descendants, kill, wait_gone
from tests.support import free_port, run, tool

ROOT = Path(__file__).resolve().parents[2]


def _occupy(port: int) -> socket.socket | None:
    """Listens on 127.0.0.1:``port`` (None when something else already does)."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", port))
    except OSError:
        holder.close()
        return None
    holder.listen()
    return holder


def test_stack_up_runs_ca_redis_mail_sink_gateway_and_portal(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CA_")}
    env["STACK_STATE_DIR"] = str(state)
    # A fresh clone on a machine where the default gRPC port is taken still comes up: the
    # stack chooses a free port for the CA's gRPC API like for every other port.
    holder = _occupy(50051)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "stack.py"), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            output.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(output)
        assert "Ctrl-C stops everything" in text, text[-3000:]
        assert "Redis on 127.0.0.1:" in text and "ca-mailsink: SMTP on" in text
        # The gateway and the sample portal: the printed URL serves the login screen.
        portal = re.search(r"Open  (https://localhost:\d+)/login", text)
        assert portal, text[-3000:]
        login = run(
            [
                "curl",
                "-sS",
                "--cacert",
                str(state / "ca" / "root" / "ca.pem"),
                portal.group(1) + "/login",
            ]
        ).stdout
        assert "マスターユーザーの初期登録" in login and "電子証明書発行" in login
        assert ".p12" in text and "Import" in text
        # The procedure portal behind the same gateway, and the sample identity certificate
        # of the test card CA the guide names: the gateway takes it on the card route.
        card = re.search(r"(\S+/card\.p12)  password: (\S+)", text)
        assert card and "/procedures/" in text, text[-3000:]
        sample = Path(card.group(1)).parent
        run(
            [
                "openssl",
                "pkcs12",
                "-in",
                card.group(1),
                "-passin",
                f"pass:{card.group(2)}",
                "-noenc",
                "-out",
                os.devnull,
            ]
        )
        trust = ["--cacert", str(state / "ca" / "root" / "ca.pem")]
        page = run(["curl", "-sS", *trust, portal.group(1) + "/procedures/"]).stdout
        assert "メールアドレス登録" in page and "同意します" in page
        # Once the gateway holds the card CA's first CRL (until then a card route says 503).
        card_page = [
            "curl",
            "-sS",
            *trust,
            "--cert",
            str(sample / "cert.pem"),
            "--key",
            str(sample / "key.pem"),
            portal.group(1) + "/procedures/card/",
        ]
        for _ in range(100):
            page = run(card_page).stdout
            if "メール認証" in page:
                break
            time.sleep(0.1)
        assert "メール認証" in page, page  # the portal's page: the card passed the gateway
        address = re.search(r"CA_GRPC_ADDRESS=(127\.0\.0\.1:\d+)", text)
        assert address and address.group(1) != "127.0.0.1:50051", text[-3000:]
        # The issuing CA certificate names the root CRL where this stack serves it (also
        # when port 8080, which `init` assumed, was taken).
        issuing = x509.load_pem_x509_certificate((state / "ca" / "issuing" / "ca.pem").read_bytes())
        points = issuing.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        url = str(points[0].full_name[0].value)  # type: ignore[index]
        status = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url]).stdout
        assert status == "200", url

        admin_env = {**env, "CA_DATA_DIR": str(state / "ca"), "CA_GRPC_ADDRESS": address.group(1)}
        run(
            [tool("ca-admin"), "org", "create", "--name", "デモ株式会社", "--id", "DEMO0001"],
            admin_env,
        )
        run(
            [
                tool("ca-admin"),
                "user",
                "create",
                "--org",
                "DEMO0001",
                "--user",
                "demo0001",
                "--email",
                "demo@example.jp",
            ],
            admin_env,
        )
        # The lockout store is the demo's own Redis: a user's state is readable.
        shown = run([tool("ca-admin"), "user", "show", "demo0001"], admin_env).stdout
        assert "state:        active" in shown
    finally:
        process.send_signal(signal.SIGINT)
        try:
            remaining, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # stack.py did not stop: none of its children may outlive the test.
            kill([process.pid, *(child.pid for child in descendants(process.pid))])
            process.wait()
            raise
        finally:
            if holder is not None:
                holder.close()
    assert process.returncode == 0, remaining[-2000:]
    assert (state / "ca" / "issuing" / "ca.pem").exists()
    assert (state / "mail").is_dir()
    # The gateway's access log is in a file of its own, not among the lines a user reads.
    terminal = "".join(output) + remaining
    assert '"path": "/login"' not in terminal, terminal[-3000:]
    access = (state / "gateway-access.log").read_text().splitlines()
    logged = [json.loads(line) for line in access]
    assert any(entry["path"] == "/login" and entry["status"] == 200 for entry in logged), access
    leftovers = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "stack.py left processes running"


def test_stack_up_prints_the_real_error_of_a_child_that_does_not_start(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    port = free_port()
    holder = _occupy(port)
    assert holder is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CA_")}
    # The CA's CRL/OCSP port is taken: ca-service cannot start, and stack.py must say why.
    env.update({"STACK_STATE_DIR": str(state), "CA_HTTP_ADDRESS": f"127.0.0.1:{port}"})
    try:
        finished = subprocess.run(
            [sys.executable, str(ROOT / "stack.py"), "up"],
            env=env,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=240,
        )
    finally:
        holder.close()
    assert finished.returncode != 0
    assert "ca-service did not start: ca-service exited with status" in finished.stderr
    assert f"127.0.0.1:{port}" in finished.stderr, finished.stderr[-3000:]
    leftovers = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "stack.py left processes running"


def test_a_killed_stack_up_takes_its_children_with_it(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CA_")}
    env["STACK_STATE_DIR"] = str(state)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "stack.py"), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if "Ctrl-C stops everything" in line or (not line and process.poll() is not None):
                break
        children = descendants(process.pid)
        assert len(children) >= 5, children  # Redis, mail sink, CA, upstream, gateway
        process.kill()  # no chance to stop anything itself
        process.wait()
        left = wait_gone([child.pid for child in children], timeout=10)
        assert not left, f"children outlived stack.py: {left}"
    finally:
        if process.poll() is None:
            kill([process.pid, *(child.pid for child in descendants(process.pid))])
            process.wait()
        process.stdout.close()
