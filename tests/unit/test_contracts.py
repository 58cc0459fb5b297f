"""Contracts: a workflow's mappings and a dry run's values against the schemas agents declare."""

from __future__ import annotations

from typing import Any

import pytest

from examples.agents.common import SKILL_SCHEMAS_EXTENSION as EXAMPLES_EXTENSION
from examples.agents.common import AgentSettings, build_card
from examples.agents.echo import EchoAgent
from examples.agents.transform import TransformAgent
from flowledger.a2a.card import SKILL_SCHEMAS_EXTENSION, skill_contracts
from flowledger.domain.contracts import (
    AgentContract,
    ContractProblem,
    SkillContract,
    check_definition,
    check_dry_run,
)
from flowledger.domain.dry_run import dry_run
from flowledger.domain.plans import StepPlan, WorkflowPlan

pytestmark = pytest.mark.unit

TRANSFORM = AgentContract(
    "transform",
    (
        SkillContract(
            "transform",
            input_schema={
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"type": "string"}},
            },
            output_schema={
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "length": {"type": "integer"},
                    "word_count": {"type": "integer"},
                },
            },
        ),
    ),
)
CONTRACTS = {"transform": TRANSFORM}


def plan(*steps: StepPlan, **options: Any) -> WorkflowPlan:
    return WorkflowPlan(steps=steps, **options)


def fields(problems: list[ContractProblem]) -> dict[tuple[str, str], str]:
    return {(p.step_id, p.field): p.message for p in problems}


def test_a_read_of_an_output_field_the_agent_does_not_declare_is_named_with_what_it_does() -> None:
    workflow = plan(
        StepPlan("shout", "transform", input_mapping={"text": "$.input.text"}),
        StepPlan(
            "report",
            "echo",
            depends_on=("shout",),
            input_mapping={
                "words": "$.steps.shout.output.words",
                "n": "$.steps.shout.output.length",
            },
        ),
    )
    assert fields(check_definition(workflow, CONTRACTS)) == {
        ("report", "input_mapping.words"): "$.steps.shout.output.words: agent 'transform' does "
        "not declare 'words' in its output (it declares: length, text, word_count)"
    }


def test_required_fields_literals_and_declared_types_are_checked_against_the_input_schema() -> None:
    workflow = plan(
        StepPlan("first", "transform", input_mapping={"text": "$.input.text"}),
        StepPlan("missing", "transform", depends_on=("first",), input_mapping={"body": "x"}),
        StepPlan("literal", "transform", depends_on=("first",), input_mapping={"text": 5}),
        StepPlan(
            "typed",
            "transform",
            depends_on=("first",),
            input_mapping={"text": "$.steps.first.output.length"},
        ),
        StepPlan("fine", "transform", depends_on=("first",), input_mapping={"text": "$.vars.t"}),
        StepPlan(
            "wrong_var", "transform", depends_on=("first",), input_mapping={"text": "$.vars.n"}
        ),
        variables={"t": "hello", "n": 3},
    )
    assert fields(check_definition(workflow, CONTRACTS)) == {
        ("missing", "input_mapping.text"): "agent 'transform' requires 'text'; the mapping does "
        "not give it",
        ("literal", "input_mapping.text"): "5 is not of type 'string'",
        ("typed", "input_mapping.text"): "$.steps.first.output.length is integer; agent "
        "'transform' expects string",
        ("wrong_var", "input_mapping.text"): "$.vars.n is integer; agent 'transform' expects "
        "string",
    }


def test_a_closed_schema_refuses_fields_it_does_not_list() -> None:
    closed = AgentContract(
        "strict",
        (
            SkillContract(
                "strict",
                input_schema={"properties": {"a": {}}, "additionalProperties": False},
            ),
        ),
    )
    workflow = plan(StepPlan("s", "strict", input_mapping={"a": 1, "b": 2}))
    assert fields(check_definition(workflow, {"strict": closed})) == {
        ("s", "input_mapping.b"): "agent 'strict' does not accept 'b' (a)"
    }


def test_input_references_are_checked_against_the_workflows_input_schema() -> None:
    workflow = plan(
        StepPlan("s", "echo", input_mapping={"u": "$.input.urll", "ok": "$.input.url"}),
        input_schema={"type": "object", "properties": {"url": {"type": "string"}}},
    )
    assert fields(check_definition(workflow, {})) == {
        ("s", "input_mapping.u"): "$.input.urll: the workflow's input schema does not declare "
        "'urll' (it declares: url)"
    }


def test_a_schema_that_does_not_list_its_fields_lets_anything_through() -> None:
    open_output = AgentContract("any", (SkillContract("any", output_schema={"type": "object"}),))
    workflow = plan(
        StepPlan("a", "any"),
        StepPlan("b", "echo", depends_on=("a",), input_mapping={"x": "$.steps.a.output.y.z"}),
    )
    assert check_definition(workflow, {"any": open_output}) == []


def test_an_agent_with_several_skills_accepts_what_one_of_them_accepts() -> None:
    two = AgentContract(
        "multi",
        (
            SkillContract("one", input_schema={"required": ["a"]}),
            SkillContract("two", input_schema={"required": ["b"]}),
        ),
    )
    fits = plan(StepPlan("s", "multi", input_mapping={"b": 1}))
    assert check_definition(fits, {"multi": two}) == []
    trace = dry_run(fits, {}, {}, {})
    assert check_dry_run(fits, trace, {"multi": two}) == []
    neither = plan(StepPlan("s", "multi", input_mapping={"c": 1}))
    assert len(check_dry_run(neither, dry_run(neither, {}, {}, {}), {"multi": two})) == 1


def test_a_dry_run_checks_resolved_inputs_and_mocked_outputs() -> None:
    workflow = plan(
        StepPlan("shout", "transform", input_mapping={"text": "$.input.text"}),
        StepPlan(
            "again",
            "transform",
            depends_on=("shout",),
            input_mapping={"text": "$.steps.shout.output.text"},
        ),
        StepPlan(
            "report", "echo", depends_on=("again",), input_mapping={"all": "$.steps.again.output"}
        ),
    )
    trace = dry_run(workflow, {"text": 42}, {}, {"shout": {"text": 7, "length": "long"}})
    assert fields(check_dry_run(workflow, trace, CONTRACTS)) == {
        ("shout", "input.text"): "42 is not of type 'string'",
        ("shout", "output.text"): "mocked output: 7 is not of type 'string'",
        ("shout", "output.length"): "mocked output: 'long' is not of type 'integer'",
        ("again", "input.text"): "7 is not of type 'string'",
    }


def test_a_dry_run_names_a_required_field_that_is_missing() -> None:
    workflow = plan(StepPlan("shout", "transform", input_mapping={"body": "$.input.text"}))
    trace = dry_run(workflow, {"text": "hi"}, {}, {})
    assert fields(check_dry_run(workflow, trace, CONTRACTS)) == {
        ("shout", "input.text"): "'text' is a required property"
    }


def test_the_sample_agents_declare_their_schemas_with_the_extension_flowledger_reads() -> None:
    card = build_card(TransformAgent(AgentSettings(kind="transform")))
    assert SKILL_SCHEMAS_EXTENSION == EXAMPLES_EXTENSION
    [contract] = skill_contracts(card)
    assert contract == SkillContract(
        "transform", TransformAgent.input_schema, TransformAgent.output_schema
    )
    assert skill_contracts(build_card(EchoAgent(AgentSettings(kind="echo")))) == ()


def test_the_steps_of_a_map_and_of_a_loop_are_checked_like_the_others() -> None:
    each = StepPlan(
        "each",
        kind="foreach",
        options={"items": "$.input.texts"},
        body=(
            StepPlan("item_ok", "transform", input_mapping={"text": "$.item"}),
            StepPlan("item_missing", "transform", input_mapping={"body": "$.item"}),
            StepPlan("item_index", "transform", input_mapping={"text": "$.index"}),
        ),
    )
    again = StepPlan(
        "again",
        kind="do_while",
        depends_on=("each",),
        options={"while": {"$expr": "iteration < 3"}},
        body=(
            StepPlan("turn", "transform", input_mapping={"text": "$.previous.text"}),
            StepPlan("turn_literal", "transform", input_mapping={"text": 7}),
        ),
    )
    workflow = plan(each, again, variables={"item": 1, "previous": {"text": 2}})
    assert fields(check_definition(workflow, CONTRACTS)) == {
        ("item_missing", "input_mapping.text"): "agent 'transform' requires 'text'; the mapping "
        "does not give it",
        ("item_index", "input_mapping.text"): "$.index is integer; agent 'transform' expects "
        "string",
        ("turn_literal", "input_mapping.text"): "7 is not of type 'string'",
    }


def test_a_dry_run_checks_each_item_of_a_map() -> None:
    each = StepPlan(
        "each",
        kind="foreach",
        options={"items": "$.input.texts"},
        body=(
            StepPlan("shout", "transform", input_mapping={"text": "$.item"}),
            StepPlan(
                "count",
                "transform",
                depends_on=("shout",),
                input_mapping={"text": "$.steps.shout.output.txet"},
            ),
        ),
    )
    workflow = plan(each)
    trace = dry_run(workflow, {"texts": ["a", 5]}, {}, {})
    found = fields(check_dry_run(workflow, trace, CONTRACTS))
    # The item that is not a string is named; the misspelt read once, not once per item.
    assert found[("each[1].shout", "input.text")] == "5 is not of type 'string'"
    assert ("each[0].shout", "input.text") not in found
    misspelt = [key for key in found if key[1] == "input_mapping.text"]
    assert misspelt == [("each[0].count", "input_mapping.text")]
