"""The README's first command: `python3 stack.py up` brings up the CA with a real Redis and
an SMTP sink whose mail the user can read, and stops everything on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import free_port, run, tool

ROOT = Path(__file__).resolve().parents[2]


def test_stack_up_runs_ca_redis_mail_sink_gateway_and_portal(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CA_")}
    env.update({"STACK_STATE_DIR": str(state), "CA_GRPC_ADDRESS": address})
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

        admin_env = {**env, "CA_DATA_DIR": str(state / "ca")}
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
        remaining, _ = process.communicate(timeout=60)
    assert process.returncode == 0, remaining[-2000:]
    assert (state / "ca" / "issuing" / "ca.pem").exists()
    assert (state / "mail").is_dir()
    leftovers = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "stack.py left processes running"


def test_mail_sink_saves_each_message_as_eml(tmp_path: Path) -> None:
    import email
    import email.policy
    import smtplib
    from email.message import EmailMessage

    port = free_port()
    sink = subprocess.Popen(
        [tool("ca-mailsink"), "--dir", str(tmp_path / "mail"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    try:
        assert "ca-mailsink: SMTP on" in sink.stdout.readline()
        message = EmailMessage()
        message["From"], message["To"] = "ca@example.jp", "taro@example.jp"
        message["Subject"] = "認証コードのお知らせ"
        message.set_content("認証コード: 123456")
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(message)
        announced = sink.stdout.readline()
        assert "mail to taro@example.jp: 認証コードのお知らせ" in announced
        (saved,) = (tmp_path / "mail").glob("*.eml")
        parsed = email.message_from_bytes(saved.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        assert parsed.get_content().strip() == "認証コード: 123456"
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(10)
