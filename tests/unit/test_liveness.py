"""Which pooled connections are checked before use: only those idle for a while."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flowledger.runtime.liveness import PING_AFTER_IDLE_S, IdleCheck, ping_after


class _Connection:
    """Stands for a psycopg connection: the rule only needs something it can remember."""


def test_a_connection_is_checked_the_first_time_and_after_idling_only() -> None:
    checked: list[Any] = []
    check = IdleCheck(checked.append, threshold_s=0.05)
    conn = _Connection()
    check(conn)  # first time: checked
    check(conn)  # a moment later: not
    time.sleep(0.08)
    check(conn)  # after idling: checked
    assert checked == [conn, conn]


def test_a_failed_check_fails_the_checkout() -> None:
    def dead(conn: Any) -> None:
        raise OSError("server closed the connection")

    with pytest.raises(OSError, match="closed"):
        IdleCheck(dead)(_Connection())


@pytest.mark.parametrize(
    ("idle_timeout_s", "expected"),
    [(0.0, PING_AFTER_IDLE_S), (30.0, PING_AFTER_IDLE_S), (1.0, 0.5), (0.4, 0.2)],
)
def test_a_connection_is_pinged_well_before_the_server_would_close_it(
    idle_timeout_s: float, expected: float
) -> None:
    assert ping_after(idle_timeout_s) == expected
