"""One leader among the copies of a follower: a session advisory lock. A second copy stands by
while the first leads, and leads within its poll once the first's session ends."""

from __future__ import annotations

import threading
import time

import pytest

from flowledger.eventlog.leadership import Leadership
from flowledger.runtime.process import Runtime

pytestmark = pytest.mark.integration


def test_a_standby_leads_once_the_leaders_session_ends(runtime: Runtime) -> None:
    stop = threading.Event()
    first = Leadership(runtime.database, "leadership-test", poll_s=0.05, check_s=0)
    second = Leadership(runtime.database, "leadership-test", poll_s=0.05, check_s=0)
    try:
        assert first.wait(stop) and first.held()

        waited: list[bool] = []
        standby = threading.Thread(target=lambda: waited.append(second.wait(stop)))
        standby.start()
        time.sleep(0.3)
        assert standby.is_alive() and not second.leading, "the lock is the first copy's"

        ended = time.monotonic()
        first.release()  # as a killed process's session ends
        standby.join(timeout=5)
        assert waited == [True] and second.held()
        assert time.monotonic() - ended < 2
        assert not first.held()
    finally:
        stop.set()
        first.release()
        second.release()


def test_a_standby_stops_waiting_when_told_to(runtime: Runtime) -> None:
    stop = threading.Event()
    first = Leadership(runtime.database, "leadership-stop", poll_s=0.05)
    second = Leadership(runtime.database, "leadership-stop", poll_s=0.05)
    try:
        assert first.wait(stop)
        threading.Timer(0.2, stop.set).start()
        assert second.wait(stop) is False
        assert not second.held()
    finally:
        first.release()
        second.release()
