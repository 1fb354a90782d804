"""The process's own limits: open file descriptors, and giving freed memory back.

Used at start-up and after floods of connections by ca-service and ca-gateway. On a C
library other than glibc there is no ``malloc_trim`` and only the garbage collection runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import resource
import sys
from collections.abc import Callable, Sequence

__all__ = ["raise_descriptor_limit", "return_freed_memory", "use_malloc"]

log = logging.getLogger(__name__)

# What the kernel allows when the hard limit says "unlimited" (fs.nr_open's default).
_NR_OPEN_DEFAULT = 1024 * 1024


def raise_descriptor_limit() -> int:
    """Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft limit now in
    force (unchanged when the raise is not allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _NR_OPEN_DEFAULT if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    return _NR_OPEN_DEFAULT if soft == resource.RLIM_INFINITY else soft


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function: Callable[[int], int] | None = getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None
    return function


_MALLOC_TRIM = _malloc_trim()


def return_freed_memory(collect: bool = True) -> None:
    """Gives memory the process has freed back to the system.

    glibc's heap only shrinks at its top by itself: after thousands of connections have
    come and gone, one block still in use near the top keeps every free page below it
    resident. ``malloc_trim`` releases the free pages wherever they are. A full garbage
    collection (``collect``; some 20 ms with few objects alive) first empties the
    interpreter's free lists (tuples, dicts, floats, …), whose leftover objects would
    otherwise keep scattered pages in use."""
    if collect:
        gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def use_malloc(argv: Sequence[str]) -> None:
    """Restarts this process (same PID, same arguments) with ``PYTHONMALLOC=malloc`` unless
    it already runs so; it must be set before the interpreter starts.

    Python's own small-object allocator takes memory in 1 MiB arenas and returns an arena
    only when every object in it is gone: after a wave of connections a handful of
    survivors (free-list entries, caches) keeps each arena of the wave resident. On glibc's
    malloc the same objects pin single pages, and ``return_freed_memory`` returns the rest.
    """
    if os.environ.get("PYTHONMALLOC") == "malloc":
        return
    # Our own interpreter and arguments, only the environment changes.
    environment = {**os.environ, "PYTHONMALLOC": "malloc"}
    os.execve(sys.executable, [sys.executable, *argv], environment)  # noqa: S606
