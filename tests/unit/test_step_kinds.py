"""Definitions with branches, maps, loops, waits, signals and sub-workflows: the plan each
becomes, and every problem named at its location (bodies included)."""

from __future__ import annotations

from typing import Any

import pytest

from flowledger.domain.definitions import agent_names, validated_plan, workflow_names
from flowledger.domain.limits import RunLimits
from flowledger.domain.plans import WorkflowPlan

pytestmark = pytest.mark.unit

AGENTS = {"echo": "active"}
WORKFLOWS = {"child": "active", "old": "inactive"}


def echo(**fields: Any) -> dict[str, Any]:
    return {"agent_name": "echo", **fields}


def problems_of(definition: dict[str, Any], **options: Any) -> list[tuple[str, str]]:
    plan, problems = validated_plan(definition, AGENTS, WORKFLOWS, **options)
    assert (plan is None) == bool(problems)
    return [(p.field, p.message) for p in problems]


EVERY_KIND = {
    "start_step": "fetch",
    "steps": {
        "fetch": echo(next_step="route", input_mapping={"orders": "$.input.orders"}),
        "route": {
            "type": "switch",
            "expression": "length(steps.fetch.output.orders)",
            "cases": {"0": "nothing"},
            "default": ["each"],
        },
        "nothing": echo(),
        "each": {
            "type": "foreach",
            "items": "steps.fetch.output.orders",
            "max_parallel": 4,
            "continue_on_error": True,
            "steps": {
                "price": echo(input_mapping={"order": "$.item", "n": "$.index"}),
                "check": {
                    "type": "if",
                    "depends_on": ["price"],
                    "condition": "steps.price.output.total > `100`",
                    "then": "hold",
                },
                "hold": {"type": "signal", "signal": "release", "timeout_ms": 60000,
                         "default": {"released": True}},
            },
        },
        "poll": {
            "type": "do_while",
            "depends_on": ["each", "nothing"],
            "until": "steps.ask.output.done",
            "steps": {"ask": echo(input_mapping={"n": "$.iteration", "p": "$.previous"})},
        },
        "rest": {"type": "wait", "depends_on": ["poll"], "duration_ms": 500},
        "later": {"type": "wait", "depends_on": ["rest"], "until": "2030-01-01T00:00:00Z"},
        "sub": {"type": "workflow", "depends_on": ["later"], "workflow_name": "child",
                "version": 2, "input_mapping": {"all": "$.steps.each.output"}},
    },
}  # fmt: skip


def test_every_kind_of_step_makes_one_plan_with_bodies_and_branch_edges() -> None:
    plan, problems = validated_plan(EVERY_KIND, AGENTS, WORKFLOWS)
    assert problems == [] and plan is not None
    assert [(s.step_id, s.kind) for s in plan.steps] == [
        ("fetch", "agent"),
        ("route", "switch"),
        ("nothing", "agent"),
        ("each", "foreach"),
        ("poll", "do_while"),
        ("rest", "wait"),
        ("later", "wait"),
        ("sub", "workflow"),
    ]
    assert plan.step("each").depends_on == ("route",)
    assert plan.branch_cases("nothing", "route") == frozenset({"0"})
    assert plan.branch_cases("each", "route") == frozenset({None})
    assert plan.branch_cases("hold", "check") == frozenset({"then"})
    assert [s.step_id for s in plan.block("each")] == ["price", "check", "hold"]
    assert (plan.parent_of("hold"), plan.depth_of("hold"), plan.nesting()) == ("each", 1, 1)
    assert plan.step("each").options == {
        "items": "steps.fetch.output.orders",
        "max_parallel": 4,
        "continue_on_error": True,
    }
    assert plan.step("hold").options == {"signal": "release", "default": {"released": True}}
    assert plan.step("sub").options == {"workflow_name": "child", "version": 2}
    assert plan.agent_names() == ["echo"]


def test_a_plan_survives_being_stored_and_read_back() -> None:
    plan, _ = validated_plan(EVERY_KIND, AGENTS, WORKFLOWS)
    assert plan is not None
    assert WorkflowPlan.from_dict(plan.to_dict()) == plan


def test_agents_and_workflows_are_found_at_any_depth() -> None:
    assert agent_names(EVERY_KIND) == {"echo"}
    assert workflow_names(EVERY_KIND) == {"child"}


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param({"a": {"type": "loop"}}, [("steps.a.type", "must be one of agent, if, switch, "
                     "foreach, do_while, wait, signal, workflow")], id="unknown type"),
        pytest.param({"a": {"type": "wait", "duration_ms": 5, "agent_name": "echo", "colour": 1}},
                     [("steps.a.agent_name", "is not a field of a wait step"),
                      ("steps.a.colour", "is not a known step field")], id="other kinds' fields"),
        pytest.param({"a": {"type": "if", "condition": "`true`"}},
                     [("steps.a.then", "an if needs then, else, or both")], id="if without paths"),
        pytest.param({"a": {"type": "if", "condition": "`true`", "then": ["a", "z"]}},
                     [("steps.a.then.0", "a branch cannot lead to itself"),
                      ("steps.a.then.1", "step 'z' does not exist in this block")],
                     id="branch targets"),
        pytest.param({"a": {"type": "switch", "expression": "input.x", "cases": {}}},
                     [("steps.a.cases", "must be an object of values and steps")], id="no cases"),
        pytest.param({"a": {"type": "foreach", "items": "input.x", "max_parallel": 0}},
                     [("steps.a.steps", "is required"),
                      ("steps.a.max_parallel", "must be between 1 and 100")], id="foreach"),
        pytest.param({"a": {"type": "do_while", "steps": {"b": echo()}}},
                     [("steps.a.while", "give exactly one of while and until")], id="do_while"),
        pytest.param({"a": {"type": "wait"}},
                     [("steps.a.duration_ms", "give exactly one of duration_ms and until")],
                     id="wait without time"),
        pytest.param({"a": {"type": "wait", "until": "2030-01-01T00:00:00"}},
                     [("steps.a.until", "must name its time zone (Z or +hh:mm)")], id="naive time"),
        pytest.param({"a": {"type": "signal", "signal": "a b", "default": 1,
                            "schema": {"type": "nope"}}},
                     [("steps.a.signal", "must be 1 to 100 letters, digits, _ or -"),
                      ("steps.a.default", "is used when timeout_ms passes: give timeout_ms too"),
                      ("steps.a.schema.type",
                       "'nope' is not valid under any of the given schemas")], id="signal"),
        pytest.param({"a": {"type": "signal", "timeout_ms": 1000, "default": {},
                            "schema": {"required": ["ok"]}}},
                     [("steps.a.default", "'ok' is a required property")], id="signal default"),
        pytest.param({"a": {"type": "workflow", "workflow_name": "nope"},
                      "b": {"type": "workflow", "workflow_name": "old"},
                      "c": {"type": "workflow"}},
                     [("steps.a.workflow_name", "no workflow named 'nope' exists"),
                      ("steps.b.workflow_name", "workflow 'old' is inactive"),
                      ("steps.c.workflow_name", "is required")], id="sub-workflows"),
        pytest.param({"a": {"type": "if", "condition": "steps.b.output", "then": "b"},
                      "b": echo()},
                     [("steps.a.condition", "step 'b' is not upstream of this step")],
                     id="a condition reads what comes after"),
    ],
)  # fmt: skip
def test_each_problem_of_a_kind_is_named_at_its_location(
    steps: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert problems_of({"steps": steps}) == expected


def test_bodies_are_checked_like_the_top_level_at_their_own_location() -> None:
    definition = {
        "steps": {
            "first": echo(),
            "each": {
                "type": "foreach",
                "depends_on": ["first"],
                "items": "`[1]`",
                "start_step": "x",
                "steps": {
                    "a": echo(next_step="b", input_mapping={"up": "$.steps.first.output"}),
                    "b": echo(next_step="a", input_mapping={"i": "$.iteration"}),
                    "c": echo(input_mapping={"later": "$.steps.after.output"}),
                    "first": echo(),
                },
            },
            "after": echo(depends_on=["each"], input_mapping={"in": "$.steps.a.output"}),
        }
    }
    assert problems_of(definition) == [
        ("steps.each.steps.first", "step id 'first' is already used at steps.first"),
        ("steps.each.start_step", "step 'x' does not exist"),
        ("steps.each.steps", "steps form a cycle: a -> b -> a"),
        ("steps.each.steps.b.input_mapping.i",
         "'iteration' is only defined inside a do_while body or its condition"),
        ("steps.each.steps.c.input_mapping.later", "step 'after' is not upstream of this step"),
        ("steps.after.input_mapping.in", "step 'a' is not upstream of this step"),
    ]  # fmt: skip


def test_a_loop_condition_reads_its_body_and_the_iteration() -> None:
    definition = {
        "steps": {
            "poll": {
                "type": "do_while",
                "while": "steps.ask.output.more && iteration < `5`",
                "steps": {"ask": echo()},
            }
        }
    }
    assert problems_of(definition) == []


def test_maps_and_loops_nest_at_most_max_loop_depth_deep() -> None:
    innermost = {"type": "do_while", "while": "`false`", "steps": {"c": echo()}}
    middle = {"type": "foreach", "items": "`[1]`", "steps": {"inner": innermost}}
    definition = {"steps": {"outer": {"type": "foreach", "items": "`[1]`",
                                      "steps": {"middle": middle}}}}  # fmt: skip
    assert problems_of(definition) == []
    assert problems_of(definition, limits=RunLimits(max_loop_depth=2)) == [
        ("steps.outer.steps.middle.steps.inner", "maps and loops nest at most 2 deep "
         "(MAX_LOOP_DEPTH)")
    ]  # fmt: skip


def test_steps_count_at_every_depth() -> None:
    body = {f"s{n}": echo() for n in range(150)}
    definition = {
        "steps": {
            **{f"t{n}": echo() for n in range(60)},
            "each": {"type": "foreach", "items": "`[]`", "steps": body},
        }
    }
    assert problems_of(definition) == [("steps", "must have at most 200 steps in all")]
