"""The machine's processes as /proc shows them (Linux), for tests that check which
processes are left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessInfo", "alive", "descendants", "kill", "mentions", "processes", "wait_gone"]


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    state: str  # R, S, D, Z (zombie), …
    command: str

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")


def _read(pid: int) -> ProcessInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return ProcessInfo(
        pid,
        int(fields[1]),
        fields[0],
        command.replace(b"\0", b" ").decode(errors="replace").strip(),
    )


def processes() -> dict[int, ProcessInfo]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _read(int(entry))
            if info is not None:
                found[info.pid] = info
    return found


def descendants(pid: int, table: dict[int, ProcessInfo] | None = None) -> list[ProcessInfo]:
    """Every process whose parent chain leads to ``pid``."""
    table = processes() if table is None else table
    children: dict[int, list[ProcessInfo]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info)
    found: list[ProcessInfo] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child.pid)
    return found


def mentions(pid: int, text: str) -> bool:
    """Whether ``text`` is in the process's command line or environment."""
    needle = text.encode()
    for name in ("cmdline", "environ"):
        try:
            if needle in Path(f"/proc/{pid}/{name}").read_bytes():
                return True
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return False


def alive(pid: int) -> bool:
    info = _read(pid)
    return info is not None and info.running


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Waits up to ``timeout`` seconds for the processes to end; returns those still
    running."""
    pending = list(pids)
    deadline = time.monotonic() + timeout
    while True:
        pending = [pid for pid in pending if alive(pid)]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.05)


def kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
