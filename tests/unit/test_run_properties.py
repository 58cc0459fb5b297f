"""The run state machine under random command sequences."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowledger.domain.errors import Conflict
from flowledger.domain.runs import TERMINAL
from tests.support.domain import history, replay
from tests.support.runs import apply, commands, diamond, requested

pytestmark = pytest.mark.unit


@settings(max_examples=300)
@given(commands, st.sampled_from([None, 1, 2]))
def test_any_command_sequence_respects_the_run_state_machine(
    sequence: list[tuple[Any, ...]], max_parallel: int | None
) -> None:
    run = requested(diamond(max_parallel))
    events = history(run)
    outputs_kept: dict[str, Any] = {}
    for command in sequence:
        before_status, before_version = run.status, run.version
        try:
            apply(run, command)
        except Conflict:
            assert run.version == before_version, f"refused {command} recorded something"
            continue
        finally:
            events += history(run)
        if before_status in TERMINAL:
            assert command[0] == "retry", f"{command} left terminal state {before_status}"
        if command[0] == "retry":
            assert {s: run.steps[s].output for s in outputs_kept} == outputs_kept
        # invariants
        plan = run.plan
        for step in run.steps.values():
            if step.status in ("RUNNING", "SUCCEEDED"):
                deps = plan.step(step.step_id).depends_on
                assert all(run.steps[d].status == "SUCCEEDED" for d in deps)
        in_flight = run.in_flight()
        if max_parallel is not None:
            assert len(in_flight) <= max_parallel
        if run.status in TERMINAL:
            assert in_flight == []
            assert all(s.status != "RUNNING" for s in run.steps.values())
        if run.status == "SUCCEEDED":
            assert all(s.status == "SUCCEEDED" for s in run.steps.values())
        if run.status == "PENDING":
            assert in_flight == []
        outputs_kept = run.outputs()
    rebuilt = replay(events)
    assert rebuilt.version == run.version == len(events)
    assert rebuilt.status == run.status
    assert {k: (v.status, v.output, len(v.attempts)) for k, v in rebuilt.steps.items()} == {
        k: (v.status, v.output, len(v.attempts)) for k, v in run.steps.items()
    }
