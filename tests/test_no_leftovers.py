"""The session check of tests/conftest.py: a test session that leaves a process running,
as its own child or as an orphan that names the session's temporary directory, fails, and
the process is killed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.processes import processes, wait_gone

ROOT = Path(__file__).resolve().parents[1]

LEAKY_TESTS = """
import os
import subprocess
import sys


def test_leaves_a_child(tmp_path):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "leaky-child"])


def test_leaves_an_orphan(tmp_path):
    # The shell exits at once; its background child is adopted by init and names the
    # test's data directory in its environment, as a stray pool worker would.
    subprocess.run(
        ["sh", "-c", "sleep 121 >/dev/null 2>&1 &"],
        env=dict(os.environ, CA_DATA_DIR=str(tmp_path / "ca")),
        check=True,
    )
"""


def _session(tmp_path: Path, test_file: Path) -> subprocess.CompletedProcess[str]:
    """A test session of ``test_file`` alone under this project's tests/conftest.py."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'inner'}",
            "--rootdir",
            str(tmp_path),
            "-q",
            str(test_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_session_that_leaves_processes_running_fails(tmp_path: Path) -> None:
    test_file = tmp_path / "test_leaky.py"
    test_file.write_text(textwrap.dedent(LEAKY_TESTS))
    result = _session(tmp_path, test_file)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 passed" in output, output
    assert "processes left running by the test session (now killed)" in output, output
    assert "leaky-child" in output and "sleep 121" in output, output
    leaked = [
        info.pid
        for info in processes().values()
        if "leaky-child" in info.command or info.command == "sleep 121"
    ]
    assert not wait_gone(leaked, timeout=2), "the leaked processes were not killed"


def test_a_clean_session_passes(tmp_path: Path) -> None:
    test_file = tmp_path / "test_clean.py"
    test_file.write_text(
        "import subprocess, sys\n"
        "def test_waits():\n"
        "    subprocess.run([sys.executable, '-c', 'pass'], check=True)\n"
    )
    result = _session(tmp_path, test_file)
    assert result.returncode == 0, result.stdout + result.stderr
