"""Several server processes on one port (SO_REUSEPORT), started and stopped together: the
kernel spreads connections over them. Shared by ca-service and ca-gateway."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

from ca_service.shared.errors import ConfigError

__all__ = ["supervise"]

log = logging.getLogger(__name__)


def supervise(
    command: Sequence[str], env: Mapping[str, str], count: int, started: str, ready: str
) -> int:
    """Runs ``count`` copies of ``command``, each of which prints a line containing ``ready``
    once it listens; prints ``started``; stops them all when told to stop or when any of
    them dies. If this process is killed, the kernel sends each copy SIGTERM
    (:mod:`ca_service.shared.lifetime`), so none outlives it."""
    workers: list[subprocess.Popen[str]] = []
    stopping = False
    _ending_with_this_process = [
        sys.executable,
        "-m",
        "ca_service.shared.lifetime",
        str(os.getpid()),
        "SIGTERM",
        "--",
    ]

    def stop_all(signum: int = signal.SIGTERM, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    try:
        for _ in range(count):
            worker = subprocess.Popen(
                [*_ending_with_this_process, *command],
                env=dict(env),
                stdout=subprocess.PIPE,
                text=True,
            )
            workers.append(worker)
            assert worker.stdout is not None
            if ready not in worker.stdout.readline():
                raise ConfigError("a worker process failed to start")
        print(started, flush=True)
        while True:
            pid, status = os.wait()
            if not stopping:
                log.error("worker %d exited (status %d); stopping the others", pid, status)
                stop_all()
                return 1
            if all(worker.poll() is not None for worker in workers):
                return 0
    except ChildProcessError:
        return 0 if stopping else 1
    finally:
        stop_all()
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
