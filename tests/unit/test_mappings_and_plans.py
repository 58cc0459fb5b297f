"""The input-mapping reference language and the workflow plan."""

from __future__ import annotations

import re

import pytest

from flowledger.domain.mappings import (
    MappingError,
    mapping_problems,
    parse_reference,
    references,
    resolve,
)
from flowledger.domain.plans import StepPlan, WorkflowPlan

pytestmark = pytest.mark.unit


def test_references_name_a_root_and_a_path() -> None:
    assert str(parse_reference("$.input.customer.id")) == "$.input.customer.id"
    assert parse_reference("$.steps.fetch.output.items.0").step_id == "fetch"
    assert parse_reference("$.input").path == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("$.secrets.x", "must start with $.input, $.vars or $.steps"),
        ("$.vars", "must name a variable"),
        ("$.steps.fetch", "must read a step's output"),
        ("$.steps.fetch.result", "must read a step's output"),
        ("$.input..x", "empty or invalid path segment"),
        ("$.input.a b", "empty or invalid path segment"),
    ],
)
def test_malformed_references_say_why(text: str, reason: str) -> None:
    with pytest.raises(MappingError, match=re.escape(reason)):
        parse_reference(text)


def test_references_are_found_at_any_depth_with_their_location() -> None:
    mapping = {"a": "$.input.x", "b": {"c": ["lit", "$.vars.v"]}, "d": 3}
    assert list(references(mapping)) == [("a", "$.input.x"), ("b.c.1", "$.vars.v")]


def test_mapping_problems_name_each_bad_reference() -> None:
    problems = mapping_problems(
        {"a": "$.vars.missing", "b": "$.steps.later.output", "c": "$.nope", "d": "$.input.ok"},
        "steps.s.input_mapping",
        upstream={"earlier"},
        variables={"present": 1},
    )
    assert [(p.field, p.message) for p in problems] == [
        ("steps.s.input_mapping.a", "variable 'missing' is not defined"),
        ("steps.s.input_mapping.b", "step 'later' is not upstream of this step"),
        ("steps.s.input_mapping.c", "'$.nope' must start with $.input, $.vars or $.steps"),
    ]


def test_resolving_replaces_references_and_keeps_literals() -> None:
    resolved = resolve(
        {
            "q": "$.input.query",
            "n": "$.vars.limit",
            "first": "$.steps.s.output.hits.0",
            "k": "lit",
            "x": 1,
        },
        input_data={"query": "cats"},
        variables={"limit": 5},
        outputs={"s": {"hits": [{"id": 7}]}},
    )
    assert resolved == {"q": "cats", "n": 5, "first": {"id": 7}, "k": "lit", "x": 1}


def test_resolving_a_missing_value_is_an_error() -> None:
    with pytest.raises(MappingError, match="no value at 'missing'"):
        resolve("$.input.missing", input_data={}, variables={}, outputs={})
    with pytest.raises(MappingError, match="has no output"):
        resolve("$.steps.s.output", input_data={}, variables={}, outputs={})


def test_a_plan_says_which_steps_are_ready_and_round_trips_as_json() -> None:
    plan = WorkflowPlan(
        steps=(
            StepPlan("a", "echo"),
            StepPlan("b", "echo", depends_on=("a",)),
            StepPlan("c", "echo", depends_on=("a",)),
            StepPlan("d", "echo", depends_on=("b", "c"), input_mapping={"x": "$.steps.b.output"}),
        ),
        variables={"v": 1},
        max_parallel_steps=2,
    )
    assert plan.ready(succeeded=[], started=[]) == ["a"]
    assert plan.ready(succeeded=["a"], started=["a"]) == ["b", "c"]
    assert plan.ready(succeeded=["a", "b"], started=["a", "b", "c"]) == []
    assert plan.ready(succeeded=["a", "b", "c"], started=["a", "b", "c"]) == ["d"]
    assert plan.upstream("d") == {"a", "b", "c"}
    assert WorkflowPlan.from_dict(plan.to_dict()) == plan
