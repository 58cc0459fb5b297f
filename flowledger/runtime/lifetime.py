"""Child processes that do not outlive the process that started them.

A process killed with ``kill -9`` cannot stop its children. On Linux a child can ask the kernel
for a signal when its parent goes (``PR_SET_PDEATHSIG``): ``flowledger dev`` asks it for its
workers (SIGTERM: they stop cleanly and give their connections back) and the embedded broker
(SIGKILL), so a killed ``flowledger dev`` leaves no worker holding connections next to the
workers of the ``flowledger dev`` started after it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Final

_PR_SET_PDEATHSIG: Final = 1


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent ``sig`` when its parent goes (Linux; None
    elsewhere). The kernel sends it when the parent's *thread* that started the child exits:
    start it from a thread that lives as long as the child should (the main thread, or a
    supervisor's)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent_pid = os.getpid()
    number = int(sig)

    def preexec() -> None:  # only an async-signal-safe prctl() call between fork and exec
        prctl(_PR_SET_PDEATHSIG, number, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died between fork() and prctl()
            os._exit(1)

    return preexec
