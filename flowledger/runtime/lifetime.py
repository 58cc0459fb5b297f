"""Child processes that do not outlive the process that started them.

A process killed with ``kill -9`` cannot stop its children. On Linux a child can ask the kernel
for a signal when its parent goes (``PR_SET_PDEATHSIG``): ``flowledger dev`` asks it for its
workers (SIGTERM: they stop cleanly and give their connections back) and the embedded broker
(SIGKILL), and the API processes of ``serve --processes N`` ask it for themselves, so a killed
``flowledger dev`` leaves no worker holding connections (or the port) next to the processes of
the ``flowledger dev`` started after it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Final

_PR_SET_PDEATHSIG: Final = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent ``sig`` when its parent goes (Linux; None
    elsewhere). The kernel sends it when the parent's *thread* that started the child exits:
    start it from a thread that lives as long as the child should (the main thread, or a
    supervisor's)."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent_pid = os.getpid()
    number = int(sig)

    def preexec() -> None:  # only an async-signal-safe prctl() call between fork and exec
        prctl(_PR_SET_PDEATHSIG, number, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died between fork() and prctl()
            os._exit(1)

    return preexec


def end_with_parent(parent_pid: int, sig: signal.Signals) -> None:
    """In a child started without a ``preexec_fn`` (multiprocessing's spawn): be sent ``sig``
    when the parent ``parent_pid`` goes (Linux), and exit at once if it has gone already."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:
        sys.exit(1)
