"""The rules a workflow definition must follow, and the plan a valid one becomes."""

from __future__ import annotations

from typing import Any

import pytest

from flowledger.domain.definitions import agent_names, validated_plan
from flowledger.domain.triggers import cron_problem

pytestmark = pytest.mark.unit

AGENTS = {"echo": "active", "sleepy": "inactive", "gone": "deleted"}


def step(**fields: Any) -> dict[str, Any]:
    return {"agent_name": "echo", **fields}


def problems_of(definition: dict[str, Any]) -> list[tuple[str, str]]:
    plan, problems = validated_plan(definition, AGENTS)
    assert (plan is None) == bool(problems)
    return [(p.field, p.message) for p in problems]


def test_the_chain_form_and_the_graph_form_make_the_same_plan() -> None:
    chain = {
        "start_step": "a",
        "steps": {"a": step(next_step="b"), "b": step(next_step="c"), "c": step()},
    }
    graph = {"steps": {"a": step(), "b": step(depends_on=["a"]), "c": step(depends_on=["b"])}}
    chain_plan, _ = validated_plan(chain, AGENTS)
    graph_plan, _ = validated_plan(graph, AGENTS)
    assert chain_plan is not None and chain_plan == graph_plan
    assert [s.depends_on for s in chain_plan.steps] == [(), ("a",), ("b",)]


def test_fan_out_and_fan_in_are_ordered_topologically_ties_in_definition_order() -> None:
    definition = {
        "steps": {
            "join": step(depends_on=["left", "right"], input_mapping={"l": "$.steps.left.output"}),
            "right": step(depends_on=["split"]),
            "left": step(depends_on=["split"]),
            "split": step(),
        },
        "variables": {"n": 3},
        "input_schema": {"type": "object"},
        "timeout_ms": 60_000,
        "max_parallel_steps": 2,
    }
    plan, problems = validated_plan(definition, AGENTS)
    assert problems == [] and plan is not None
    assert plan.step_ids == ("split", "right", "left", "join")
    assert plan.step("join").depends_on == ("right", "left")
    assert plan.ready(succeeded=["split"], started=["split"]) == ["right", "left"]
    assert (plan.variables, plan.timeout_ms, plan.max_parallel_steps) == ({"n": 3}, 60_000, 2)


def test_mixed_forms_merge_their_edges() -> None:
    definition = {"steps": {"a": step(next_step="c"), "b": step(), "c": step(depends_on=["b"])}}
    plan, _ = validated_plan(definition, AGENTS)
    assert plan is not None and plan.step("c").depends_on == ("a", "b")


def test_step_overrides_reach_the_plan() -> None:
    definition = {"steps": {"a": step(timeout_ms=5_000, retry_config={"max_retries": 0})}}
    plan, _ = validated_plan(definition, AGENTS)
    assert plan is not None
    assert plan.step("a").timeout_ms == 5_000
    assert plan.step("a").retry == {"max_retries": 0}


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        pytest.param({}, [("steps", "is required")], id="no steps"),
        pytest.param({"steps": []}, [("steps", "must be an object keyed by step id")], id="list"),
        pytest.param({"steps": {}}, [("steps", "must have 1 to 200 steps")], id="empty"),
        pytest.param(
            {"steps": {"a": step()}, "colour": "red"},
            [("colour", "is not a known field")],
            id="unknown field",
        ),
        pytest.param(
            {"start_step": "x", "steps": {"a": step()}},
            [("start_step", "step 'x' does not exist")],
            id="missing start step",
        ),
        pytest.param(
            {"steps": {"a": step(next_step="b")}},
            [("steps.a.next_step", "step 'b' does not exist")],
            id="unknown next step",
        ),
        pytest.param(
            {"steps": {"a": step(), "b": step(depends_on=["a", "z", "a"])}},
            [
                ("steps.b.depends_on.1", "step 'z' does not exist"),
                ("steps.b.depends_on.2", "repeats 'a'"),
            ],
            id="bad dependencies",
        ),
        pytest.param(
            {"steps": {"a": step(depends_on="b"), "b": step()}},
            [("steps.a.depends_on", "must be a list of step ids")],
            id="depends_on not a list",
        ),
        pytest.param(
            {"start_step": "a", "steps": {"a": step(next_step="b"), "b": step(next_step="a")}},
            [("steps", "steps form a cycle: a -> b -> a")],
            id="cycle",
        ),
        pytest.param(
            {"steps": {"a": step(), "b": step(depends_on=["b"])}},
            [("steps", "steps form a cycle: b -> b")],
            id="self loop",
        ),
        pytest.param(
            {"start_step": "a", "steps": {"a": step(), "b": step(next_step="c"), "c": step()}},
            [
                ("steps.b", "is not reachable from the start step 'a'"),
                ("steps.c", "is not reachable from the start step 'a'"),
            ],
            id="unreachable",
        ),
        pytest.param(
            {"steps": {"a b": step(), "a": "echo"}},
            [
                ("steps.a b", "step ids must be 1 to 100 letters, digits, _ or - characters"),
                ("steps.a", "must be an object"),
            ],
            id="bad step ids and steps",
        ),
        pytest.param(
            {"steps": {"a": {"id": "b", "agent": "echo"}}},
            [
                ("steps.a.agent", "is not a known step field"),
                ("steps.a.id", "must equal the step's key 'a'"),
                ("steps.a.agent_name", "is required"),
            ],
            id="step fields",
        ),
        pytest.param(
            {"steps": {"a": step(agent_name="nobody"), "b": step(agent_name="sleepy")}},
            [
                ("steps.a.agent_name", "no agent named 'nobody' is registered"),
                (
                    "steps.b.agent_name",
                    "agent 'sleepy' is inactive; steps may only use active agents",
                ),
            ],
            id="agents",
        ),
        pytest.param(
            {"steps": {"a": step(agent_name="")}},
            [("steps.a.agent_name", "must be an agent's name")],
            id="empty agent name",
        ),
        pytest.param(
            {
                "steps": {
                    "a": step(input_mapping={"x": "$.steps.b.output", "y": "$.vars.v"}),
                    "b": step(depends_on=["a"], input_mapping={"q": "$.input.a b"}),
                    "c": step(input_mapping=["$.input"]),
                }
            },
            [
                ("steps.a.input_mapping.x", "step 'b' is not upstream of this step"),
                ("steps.a.input_mapping.y", "variable 'v' is not defined"),
                (
                    "steps.b.input_mapping.q",
                    "'$.input.a b' has an empty or invalid path segment 'a b'",
                ),
                ("steps.c.input_mapping", "must be an object"),
            ],
            id="mappings",
        ),
        pytest.param(
            {"steps": {"a": step(timeout_ms=10, retry_config={"max_retries": 99, "jitter": 1})}},
            [
                ("steps.a.timeout_ms", "must be between 1000 and 300000"),
                ("steps.a.retry_config.jitter", "is not a retry setting"),
                ("steps.a.retry_config.max_retries", "must be between 0 and 10"),
            ],
            id="step overrides",
        ),
        pytest.param(
            {"steps": {"a": step()}, "variables": {"ok": 1, "not ok": 2}},
            [("variables.not ok", "names must be 1 to 100 letters, digits, _ or -")],
            id="variable names",
        ),
        pytest.param(
            {"steps": {"a": step()}, "input_schema": {"type": "strin", "minLength": -1}},
            [
                ("input_schema.minLength", "-1 is less than the minimum of 0"),
                ("input_schema.type", "'strin' is not valid under any of the given schemas"),
            ],
            id="input schema",
        ),
        pytest.param(
            {"steps": {"a": step()}, "input_schema": {"$schema": "https://example.com/mine"}},
            [("input_schema.$schema", "is not a JSON Schema dialect we know")],
            id="input schema dialect",
        ),
        pytest.param(
            {"steps": {"a": step()}, "input_schema": {"pattern": "("}},
            [("input_schema.pattern", "'(' is not a 'regex'")],
            id="input schema regex",
        ),
        pytest.param(
            {
                "steps": {"a": step(input_mapping={"x": "nul\x00", "k\x00": 1})},
                "variables": {"v": ["\x00"]},
            },
            [
                ("steps.a.input_mapping.k\x00", "names must not contain NUL characters"),
                ("variables.v.0", "must not contain NUL characters"),
                ("steps.a.input_mapping.x", "must not contain NUL characters"),
            ],
            id="NUL characters, which PostgreSQL cannot store",
        ),
        pytest.param(
            {"steps": {"a": step()}, "timeout_ms": 5, "max_parallel_steps": 0},
            [
                ("timeout_ms", "must be between 1000 and 86400000"),
                ("max_parallel_steps", "must be between 1 and 100"),
            ],
            id="workflow limits",
        ),
    ],
)
def test_each_problem_is_named_at_its_location(
    definition: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert problems_of(definition) == expected


def test_every_problem_is_reported_at_once() -> None:
    definition = {
        "start_step": "nope",
        "steps": {
            "a": step(agent_name="nobody", next_step="b"),
            "b": step(next_step="a", input_mapping={"x": "$.bad"}),
        },
    }
    assert [field for field, _ in problems_of(definition)] == [
        "steps.a.agent_name",
        "start_step",
        "steps",
        "steps.b.input_mapping.x",
    ]


@pytest.mark.parametrize(
    ("triggers", "expected"),
    [
        ({"type": "manual"}, [("triggers", "must be a list")]),
        (["manual"], [("triggers.0", "must be an object")]),
        ([{"type": "email"}], [("triggers.0.type", "must be one of manual, schedule, webhook")]),
        ([{"type": "schedule"}], [("triggers.0.cron", "is required for schedule triggers")]),
        (
            [{"type": "schedule", "cron": "* * *", "enabled": "yes"}],
            [
                ("triggers.0.enabled", "must be true or false"),
                (
                    "triggers.0.cron",
                    "must have five fields (minute hour day-of-month month day-of-week) or be "
                    "one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually",
                ),
            ],
        ),
        (
            [{"type": "schedule", "cron": "@daily", "input": {"url": 3}}],
            [("triggers.0.input.url", "3 is not of type 'string'")],
        ),
        (
            [{"type": "manual", "cron": "@daily"}],
            [("triggers.0.cron", "is not a setting of manual triggers")],
        ),
        (
            [{"type": "webhook", "path": "in"}, {"type": "webhook", "path": "in"}],
            [("triggers.1.path", "'in' is used by another trigger")],
        ),
        (
            [{"type": "webhook", "path": "a/b"}],
            [("triggers.0.path", "must be 1 to 100 letters, digits, _ or -")],
        ),
    ],
)
def test_triggers_are_checked(triggers: Any, expected: list[tuple[str, str]]) -> None:
    definition = {
        "steps": {"a": step()},
        "input_schema": {"type": "object", "properties": {"url": {"type": "string"}}},
        "triggers": triggers,
    }
    assert problems_of(definition) == expected


def test_valid_triggers_are_accepted() -> None:
    definition = {
        "steps": {"a": step()},
        "triggers": [
            {"type": "manual"},
            {"type": "schedule", "cron": "*/15 9-17 * jan-jun mon-fri", "input": {"q": 1}},
            {"type": "webhook", "path": "orders-created", "enabled": False},
        ],
    }
    assert problems_of(definition) == []


@pytest.mark.parametrize(
    "cron", ["* * * * *", "0 0 1 1 0", "5,10-20/5 */2 1-31 12 7", "0 12 * DEC SUN", "@hourly"]
)
def test_cron_expressions_we_accept(cron: str) -> None:
    assert cron_problem(cron) is None


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("60 * * * *", "minute field '60': 60 is outside 0-59"),
        ("* 24 * * *", "hour field '24': 24 is outside 0-23"),
        ("* * 0 * *", "day of month field '0': 0 is outside 1-31"),
        ("* * * 13 *", "month field '13': 13 is outside 1-12"),
        ("* * * * 8", "day of week field '8': 8 is outside 0-7"),
        ("*/0 * * * *", "minute field '*/0': '*/0' has a step that is not a positive number"),
        ("10-5 * * * *", "minute field '10-5': range '10-5' runs backwards"),
        ("* * * foo *", "month field 'foo': 'foo' is not a number or a name"),
        ("x * * * *", "minute field 'x': 'x' is not a number"),
        ("1,,2 * * * *", "minute field '1,,2': '' is not a number"),
    ],
)
def test_cron_expressions_we_refuse_say_why(cron: str, reason: str) -> None:
    assert cron_problem(cron) == reason


def test_agent_names_are_read_from_any_definition() -> None:
    assert agent_names({"steps": {"a": step(), "b": {"agent_name": "x"}, "c": 3}}) == {"echo", "x"}
    assert agent_names({"steps": "nonsense"}) == set()
