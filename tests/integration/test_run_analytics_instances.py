"""Analytics count a map's or loop's step instances under their step (``each_word[2].shout`` is
``each_word.shout``) and leave steps that call no agent out, however the runs projection's
batches fall."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from flowledger.eventlog.follower import Follower
from flowledger.projections.projector import Projector
from flowledger.projections.runs import RunsProjection
from flowledger.runtime.process import Runtime
from tests.support.control_histories import SCRIPT, record_control_histories

pytestmark = pytest.mark.integration

STEPS = text(
    "SELECT step_id, agent_name, status, steps, attempts, retries, failed_attempts "
    "FROM analytics_steps WHERE span = 'day' AND workflow_id = :workflow ORDER BY step_id"
)


def steps_counted(runtime: Runtime, workflow_id: Any) -> list[tuple[Any, ...]]:
    with runtime.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(STEPS, {"workflow": workflow_id})]


@pytest.mark.parametrize("batch_size", [1, 7, 500])
def test_agent_step_instances_count_under_their_step_and_control_steps_not_at_all(
    runtime: Runtime, batch_size: int
) -> None:
    (run,) = record_control_histories(runtime.store, [SCRIPT])
    assert run.status == "SUCCEEDED"
    Follower(
        runtime.store,
        Projector(RunsProjection(), runtime.store, runtime.engine),
        batch_size=batch_size,
    ).catch_up()

    with runtime.engine.connect() as conn:
        instances = conn.execute(
            text("SELECT count(*) FROM run_steps WHERE run_id = :run AND step_id LIKE '%[%'"),
            {"run": run.id},
        ).scalar_one()
    assert instances == 3 + 2, "a shout per word, a check per iteration"
    assert steps_counted(runtime, run.workflow_id) == [
        # step, agent, status, steps, attempts, retries, failed attempts
        ("big", "echo", "SUCCEEDED", 1, 1, 0, 0),
        ("each_word.shout", "echo", "SUCCEEDED", 3, 4, 1, 1),
        ("measure", "echo", "SUCCEEDED", 1, 1, 0, 0),
        ("poll.check", "echo", "SUCCEEDED", 2, 2, 0, 0),
        ("small", "echo", "SKIPPED", 1, 0, 0, 0),
    ], "no [n] in a step; no branch, map, loop, wait, signal or child run (they call no agent)"
