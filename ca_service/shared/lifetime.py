"""Child processes that end with their parent, however the parent ends (SIGKILL included).

Two kinds of children need it:

- the PKCS#12 pool's workers (multiprocessing, spawn context): killed parent or not, a
  worker would otherwise block for ever on its task queue, whose write end it holds itself;
  and multiprocessing's resource tracker, which every worker is handed a pipe to, reads
  that pipe until the last holder closes it, so it lived exactly as long as the orphaned
  workers (it ignores SIGINT and SIGTERM by design). :func:`process_pool` makes workers
  that die with the process that made them; the tracker then sees end-of-file and exits.
- the server processes a supervisor runs on one port (:mod:`ca_service.shared.workers`):
  they are started through this module's ``__main__`` (``python -m
  ca_service.shared.lifetime PARENT SIGNAL -- COMMAND…``), which arranges the signal and
  then execs the command.

On Linux the kernel delivers the signal (``prctl(PR_SET_PDEATHSIG)``) the moment the parent
thread that started the child ends, so children must be started from a thread that lives as
long as the process (the event loop's thread, the supervisor's main thread). Elsewhere, and
as a fallback, a pool worker also polls its parent's pid twice a second.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Final

__all__ = ["die_with_parent", "process_pool", "set_parent_death_signal"]

_PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>
_POLL_SECONDS: Final = 0.5


def set_parent_death_signal(signum: int) -> bool:
    """Asks the kernel to send ``signum`` to this process when its parent ends (Linux
    only); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    return True


def _watch_parent(parent_pid: int, signum: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_POLL_SECONDS)
    os.kill(os.getpid(), signum)


def die_with_parent(parent_pid: int, signum: int = signal.SIGKILL) -> None:
    """Ends this process with ``signum`` once ``parent_pid`` is no longer its parent: at
    once on Linux, within half a second elsewhere. If the parent is already gone, now."""
    set_parent_death_signal(signum)
    if os.getppid() != parent_pid:
        # The parent ended before the signal was arranged.
        os.kill(os.getpid(), signum)
    threading.Thread(
        target=_watch_parent, args=(parent_pid, signum), name="parent-watch", daemon=True
    ).start()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of spawned worker processes (a fork of a process running gRPC's threads is
    not safe) that die with this process. Submit from a long-lived thread (see above)."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )


def _exec_as_child(argv: list[str]) -> None:
    """``PARENT_PID SIGNAL_NAME -- COMMAND…``: arrange ``SIGNAL_NAME`` for when PARENT_PID
    ends, then become COMMAND (the arrangement survives exec)."""
    if len(argv) < 4 or argv[2] != "--":
        raise SystemExit(
            "usage: python -m ca_service.shared.lifetime PARENT_PID SIGNAL -- COMMAND..."
        )
    parent_pid, signum = int(argv[0]), signal.Signals[argv[1]]
    set_parent_death_signal(signum)
    if os.getppid() != parent_pid:
        raise SystemExit(f"parent {parent_pid} ended before the child started")
    os.execvp(argv[3], argv[3:])  # noqa: S606 - the supervisor's own command, no shell


if __name__ == "__main__":
    _exec_as_child(sys.argv[1:])
