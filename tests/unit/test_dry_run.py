"""Dry runs follow a run's rules without recording or calling anything: branches choose, maps
run each item, loops go round, waits end at once, signals take their mocks."""

from __future__ import annotations

from typing import Any

import pytest

from flowledger.domain.dry_run import dry_run
from flowledger.domain.limits import RunLimits
from tests.support.runs import plan_of

pytestmark = pytest.mark.unit


def echo(**fields: Any) -> dict[str, Any]:
    return {"agent_name": "echo", **fields}


FLOW = {
    "steps": {
        "fetch": echo(input_mapping={"orders": "$.input.orders"}),
        "route": {
            "type": "if",
            "depends_on": ["fetch"],
            "condition": "length(steps.fetch.output.orders) > `2`",
            "then": "bulk",
            "else": "each",
        },
        "bulk": echo(),
        "each": {
            "type": "foreach",
            "items": "steps.fetch.output.orders",
            "steps": {"price": echo(input_mapping={"order": "$.item"})},
        },
        "approve": {"type": "signal", "depends_on": ["bulk", "each"]},
        "rest": {"type": "wait", "depends_on": ["approve"], "duration_ms": 86_400_000},
        "done": echo(depends_on=["rest"], input_mapping={"ok": "$.steps.approve.output.ok"}),
    }
}


def test_a_dry_run_traces_each_instance_in_the_order_it_began_with_what_it_decided() -> None:
    result = dry_run(
        plan_of(FLOW),
        {"orders": [1, 2]},
        {},
        {"each[1].price": {"priced": True}, "approve": {"ok": "yes"}},
    )
    assert result.status == "SUCCEEDED"
    traced = [(s.step_id, s.kind, s.status, s.output_source, s.note) for s in result.steps]
    assert traced == [
        ("fetch", "agent", "SUCCEEDED", "echo", None),
        ("route", "if", "SUCCEEDED", None, "chose 'else'"),
        ("bulk", "agent", "SKIPPED", None, None),
        ("each", "foreach", "SUCCEEDED", None, "2 items"),
        ("each[0].price", "agent", "SUCCEEDED", "echo", None),
        ("each[1].price", "agent", "SUCCEEDED", "mock", None),
        ("approve", "signal", "SUCCEEDED", "mock", "waits for signal 'approve' (a dry run takes "
         "its mock)"),
        ("rest", "wait", "SUCCEEDED", None, traced[7][4]),
        ("done", "agent", "SUCCEEDED", "echo", None),
    ]  # fmt: skip
    assert str(traced[7][4]).endswith("(a dry run does not wait)")
    assert result.steps[3].output == [{"order": 1}, {"priced": True}]
    assert (result.steps[5].parent_step_id, result.steps[5].index) == ("each", 1)
    assert result.output == {"ok": "yes"}
    waves = [s.wave for s in result.steps]
    assert waves == sorted(waves) and waves[0] == 1


def test_a_dry_run_stops_where_a_run_would_fail_and_says_why() -> None:
    result = dry_run(plan_of(FLOW), {"orders": {"not": "a list"}}, {}, {})
    assert result.status == "FAILED"
    assert result.error == "step 'each' failed: items must be a list, got an object"
    assert [s.status for s in result.steps if s.step_id in ("each", "approve")] == [
        "FAILED",
        "SKIPPED",
    ]


def test_a_dry_run_keeps_the_limits() -> None:
    result = dry_run(
        plan_of(FLOW), {"orders": [1, 2, 3, 4]}, {}, {}, RunLimits(max_total_operations=3)
    )
    assert result.status == "FAILED"
    assert (result.error or "").startswith("MAX_TOTAL_OPERATIONS (3) exceeded")


def test_a_mapping_that_fails_in_several_items_of_one_wave_fails_the_run_once() -> None:
    flow = {
        "steps": {
            "each": {
                "type": "foreach",
                "items": "input.orders",
                "steps": {"price": echo(input_mapping={"id": "$.item.id"})},
            }
        }
    }
    result = dry_run(plan_of(flow), {"orders": [{"sku": 1}, {"sku": 2}, {"sku": 3}]}, {}, {})
    assert result.status == "FAILED"
    assert result.error is not None and "each[0].price" in result.error
    statuses = {s.step_id: s.status for s in result.steps}
    assert statuses["each[0].price"] == "FAILED"
    assert statuses["each"] == "FAILED"


def test_items_of_an_inner_map_that_failed_in_the_same_wave_are_passed_over() -> None:
    # The outer map goes on past a failed item, so the run is not over when the inner map
    # fails: its other items, ready in the same wave, are no longer ready.
    flow = {
        "steps": {
            "outer": {
                "type": "foreach",
                "items": "input.groups",
                "continue_on_error": True,
                "steps": {
                    "inner": {
                        "type": "foreach",
                        "items": "item",
                        "steps": {"price": echo(input_mapping={"id": "$.item.id"})},
                    }
                },
            }
        }
    }
    result = dry_run(plan_of(flow), {"groups": [[{"sku": 1}, {"sku": 2}]]}, {}, {})
    assert result.status == "SUCCEEDED"
    assert [(s.step_id, s.status) for s in result.steps] == [
        ("outer", "SUCCEEDED"),
        ("outer[0].inner", "FAILED"),
        ("outer[0].inner[0].price", "FAILED"),  # its sibling was never started
    ]
