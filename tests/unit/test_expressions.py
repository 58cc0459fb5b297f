"""Expressions (JMESPath) in conditions, items and mappings: what they read, their truth, the
problems a definition's expressions are reported with, and references beside them."""

from __future__ import annotations

from typing import Any

import pytest

from flowledger.domain.expressions import (
    ExpressionError,
    Names,
    case_label,
    evaluate,
    expression_problems,
    truthy,
)
from flowledger.domain.mappings import MappingError, mapping_problems, resolve

pytestmark = pytest.mark.unit

CONTEXT = {
    "input": {"amount": 150, "orders": [{"id": 1, "total": 5}, {"id": 2, "total": 50}]},
    "vars": {"region": "eu"},
    "steps": {"a": {"output": None}, "b": {"output": {"text": "hi"}}},
}


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("input.amount > `100` && vars.region == 'eu'", True),
        ("input.orders[?total > `10`].id", [2]),
        ("length(input.orders)", 2),
        ("steps.a.output || steps.b.output", {"text": "hi"}),
        ("input.missing", None),
        ("{n: length(input.orders), first: input.orders[0].id}", {"n": 2, "first": 1}),
    ],
)
def test_expressions_read_the_run_as_json(expression: str, value: Any) -> None:
    assert evaluate(expression, CONTEXT) == value


def test_an_expression_that_fails_on_its_data_says_which_and_why() -> None:
    with pytest.raises(ExpressionError, match=r"'abs\(vars.region\)': .*"):
        evaluate("abs(vars.region)", CONTEXT)


@pytest.mark.parametrize(
    ("value", "truth"),
    [(None, False), (False, False), ("", False), ([], False), ({}, False), (0, True), ("x", True)],
)
def test_conditions_follow_jmespath_truth(value: Any, truth: bool) -> None:
    assert truthy(value) is truth


@pytest.mark.parametrize(
    ("value", "label"), [("eu", "eu"), (3, "3"), (True, "true"), (None, "null"), ([1], "[1]")]
)
def test_a_switch_matches_strings_as_they_are_and_the_rest_as_json(value: Any, label: str) -> None:
    assert case_label(value) == label


@pytest.mark.parametrize(
    ("expression", "names", "problems"),
    [
        ("input.[", Names(), ["is not a valid expression: it ends too early at character 7"]),
        ("`oops", Names(), ["is not a valid expression: Unclosed ` delimiter at character 0"]),
        ("secrets.key", Names(), ["'secrets' is not defined: expressions read input, vars, "
                                  "steps, item, index, iteration, previous"]),
        ("steps.later.output", Names(steps=frozenset({"a"})),
         ["step 'later' is not upstream of this step"]),
        ("item.price", Names(), ["'item' is only defined inside a foreach body"]),
        ("iteration < `3`", Names(), ["'iteration' is only defined inside a do_while body or "
                                      "its condition"]),
        ("item.price", Names(locals=frozenset({"item", "index"})), []),
        ("input.orders[?total > `10`].id | length(@)", Names(), []),
        ("sort_by(input.orders, &total)[0]", Names(), []),
        ("", Names(), ["must be an expression (a JMESPath string)"]),
    ],
)  # fmt: skip
def test_expression_problems_name_what_is_wrong(
    expression: str, names: Names, problems: list[str]
) -> None:
    assert [p.message for p in expression_problems(expression, "at", names)] == problems


def test_fields_inside_filters_and_projections_are_the_items_own_not_roots() -> None:
    assert expression_problems("input.orders[?total > `10`].id", "x", Names()) == []
    assert expression_problems("input.orders[*].{t: total}", "x", Names()) == []


def test_mappings_take_expressions_beside_references_and_literals() -> None:
    mapping = {
        "url": "$.input.url",
        "count": {"$expr": "length(steps.search.output.hits)"},
        "item": "$.item.name",
        "literal": "plain text",
    }
    resolved = resolve(
        mapping,
        input_data={"url": "u"},
        variables={},
        outputs={"search": {"hits": [1, 2, 3]}},
        local_values={"item": {"name": "n"}},
    )
    assert resolved == {"url": "u", "count": 3, "item": "n", "literal": "plain text"}


def test_a_failing_expression_in_a_mapping_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="abs"):
        resolve({"x": {"$expr": "abs('a')"}}, input_data={}, variables={}, outputs={})


def test_mapping_problems_check_expressions_and_local_names() -> None:
    problems = mapping_problems(
        {"a": {"$expr": "steps.b.output"}, "b": "$.item", "c": "$.iteration.x"},
        "steps.s.input_mapping",
        upstream=set(),
        variables={},
    )
    assert [(p.field, p.message) for p in problems] == [
        ("steps.s.input_mapping.b", "'item' is only defined inside a foreach body"),
        ("steps.s.input_mapping.c", "'$.iteration.x': $.iteration is a number and has no fields"),
        ("steps.s.input_mapping.a", "step 'b' is not upstream of this step"),
    ]
