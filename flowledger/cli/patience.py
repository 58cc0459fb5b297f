"""Running a command when the database turns us away: one line saying why and what to do, a
few more tries for a short, bounded time, then exit code 75 (``EX_TEMPFAIL``: try again later),
never a stack trace.

A command is tried again from its start. That is safe for every operator's command: they read
(``status``, ``audit verify``, ``events tail``), or are idempotent (``audit purge``, ``migrate``,
under its advisory lock), or change nothing when interrupted (``projections rebuild``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Final, TextIO

from flowledger.domain.backoff import Backoff
from flowledger.runtime.connections import ConnectionSettings
from flowledger.runtime.database import Database
from flowledger.runtime.refusals import Refusal, probe, refusal_of
from flowledger.runtime.settings import Settings

EXIT_UNAVAILABLE: Final = 75
"""The database was unavailable; trying again later may work (sysexits' EX_TEMPFAIL)."""
EXIT_REFUSED: Final = 1
"""The database refused us for good (credentials, a database that does not exist)."""
RETRY: Final = Backoff(initial=0.5, maximum=5.0, jitter=(0.5, 1.0))


def patiently(
    run: Callable[[], int], settings: Settings, *, retry: bool = True, out: TextIO | None = None
) -> int:
    """``run()``'s exit code; while the database refuses a connection, try again until
    ``FLOWLEDGER_DB_RETRY`` seconds have passed (only once when not ``retry``)."""
    err = out or sys.stderr
    patience_s = ConnectionSettings.from_settings(settings).retry_s if retry else 0.0
    deadline = time.monotonic() + patience_s
    failures = 0
    while True:
        try:
            return run()
        except Exception as error:
            refusal = _explain(error, settings)
            if refusal is None:
                raise
            failures += 1
            left = deadline - time.monotonic()
            if not refusal.transient or left <= 0:
                given_up = f"gave up after {patience_s:g}s: " if failures > 1 else ""
                print(f"flowledger: {given_up}{refusal.line()}", file=err, flush=True)
                return EXIT_UNAVAILABLE if refusal.transient else EXIT_REFUSED
            if failures == 1:
                print(
                    f"flowledger: {refusal.line()}; trying again for up to {patience_s:g}s",
                    file=err,
                    flush=True,
                )
            time.sleep(min(RETRY.delay(failures), left))


def _explain(error: Exception, settings: Settings) -> Refusal | None:
    refusal = refusal_of(error)
    if refusal is None or refusal.detail or not settings.database_url:
        return refusal
    # Our pool timed out without the server's words: ask the server directly.
    return probe(Database.from_url(settings.database_url)) or refusal
