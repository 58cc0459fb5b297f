"""The Workflow aggregate, as given/when/then specifications."""

from __future__ import annotations

from typing import Any

import pytest

from flowledger.domain.errors import Conflict, InvalidInput, NotFound
from flowledger.domain.plans import WorkflowPlan
from flowledger.domain.workflows import Workflow
from flowledger.projections.audit import audit_row
from tests.support.domain import given, history, names, when

pytestmark = pytest.mark.unit

OWNER = "key:00000000-0000-4000-8000-00000000000a"
AGENTS = {"fetcher": "active", "summarizer": "active", "sleepy": "inactive"}
TWO_STEPS: dict[str, Any] = {
    "start_step": "fetch",
    "steps": {
        "fetch": {
            "agent_name": "fetcher",
            "next_step": "summarise",
            "input_mapping": {"url": "$.input.url"},
        },
        "summarise": {
            "agent_name": "summarizer",
            "input_mapping": {"text": "$.steps.fetch.output.text"},
        },
    },
}


def created(definition: dict[str, Any] | None = None, **fields: Any) -> list[Any]:
    return history(
        Workflow.create(
            name=fields.pop("name", "summarise-page"),
            definition=definition or TWO_STEPS,
            agents=AGENTS,
            owner=fields.pop("owner", OWNER),
            **fields,
        )
    )


def with_step(step_id: str, step: dict[str, Any]) -> dict[str, Any]:
    return {**TWO_STEPS["steps"], step_id: step}


def problems(error: InvalidInput) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in error.problems]


def test_creating_a_workflow_records_version_1_with_the_definition_and_its_plan() -> None:
    events = created(description="fetch, then summarise")
    assert names(events) == ["Workflow.Created"]
    assert events[0].definition == TWO_STEPS
    assert WorkflowPlan.from_dict(events[0].plan).step("summarise").depends_on == ("fetch",)
    workflow = given(events)
    assert workflow.status == "active"
    assert workflow.current_version == 1
    assert workflow.definition == TWO_STEPS
    assert workflow.plan_of(1).step_ids == ("fetch", "summarise")


def test_null_definition_fields_are_not_stored() -> None:
    workflow = given(created({**TWO_STEPS, "input_schema": None, "variables": None}))
    assert workflow.definition == TWO_STEPS


def test_an_invalid_name_and_an_invalid_definition_are_reported_together() -> None:
    with pytest.raises(InvalidInput) as raised:
        Workflow.create(name=" padded", definition={"steps": {}}, agents=AGENTS, owner=OWNER)
    assert [field for field, _ in problems(raised.value)] == ["name", "steps"]


def test_a_description_with_a_nul_character_is_refused() -> None:
    workflow = given(created())
    with pytest.raises(InvalidInput) as raised:
        workflow.update({"description": "\x00"}, AGENTS)
    assert problems(raised.value) == [("description", "must not contain NUL characters")]


def test_updating_the_definition_records_the_next_version_and_what_it_changed() -> None:
    workflow = given(created())
    new_steps = with_step(
        "notify", {"agent_name": "fetcher", "depends_on": ["summarise"], "input_mapping": {}}
    )
    new_steps["fetch"] = {**new_steps["fetch"], "timeout_ms": 5000}
    events = when(workflow, lambda w: w.update({"steps": new_steps}, AGENTS))
    assert names(events) == ["Workflow.Updated"]
    assert events[0].version == 2
    assert events[0].changes == {
        "from_version": 1,
        "steps_added": ["notify"],
        "steps_removed": [],
        "steps_changed": {"fetch": ["timeout_ms"]},
        "fields_changed": [],
    }
    assert workflow.current_version == 2
    assert workflow.definition["steps"] == new_steps
    assert workflow.definition["start_step"] == "fetch", "fields not given are kept"


def test_earlier_versions_and_their_plans_stay_as_they_were() -> None:
    workflow = given(created())
    only = {"start_step": None, "steps": {"only": {"agent_name": "fetcher"}}}
    when(workflow, lambda w: w.update(only, AGENTS))
    assert "start_step" not in workflow.definition, "null removes an optional field"
    assert workflow.versions[1].definition == TWO_STEPS
    assert workflow.plan_of(1).step_ids == ("fetch", "summarise")
    assert workflow.plan_of(2).step_ids == ("only",)
    assert workflow.plan_of().step_ids == ("only",)
    with pytest.raises(NotFound):
        workflow.plan_of(3)


def test_replaying_the_events_gives_back_every_version() -> None:
    workflow = Workflow.create(name="w", definition=TWO_STEPS, agents=AGENTS, owner=OWNER)
    workflow.update({"variables": {"style": "short"}}, AGENTS)
    replayed = given(history(workflow))
    assert replayed.current_version == 2
    assert replayed.versions == workflow.versions


def test_an_update_that_changes_nothing_records_nothing() -> None:
    workflow = given(created(description="same"))
    assert when(workflow, lambda w: w.update({"description": "same", **TWO_STEPS}, AGENTS)) == []


def test_an_unchanged_definition_is_not_revalidated() -> None:
    workflow = given(created())
    agents_now = {"fetcher": "inactive"}
    assert when(workflow, lambda w: w.update({"steps": TWO_STEPS["steps"]}, agents_now)) == []


def test_changing_the_description_or_status_makes_no_new_version() -> None:
    workflow = given(created())
    events = when(workflow, lambda w: w.update({"description": "new words"}, {}))
    events += when(workflow, lambda w: w.deactivate())
    events += when(workflow, lambda w: w.activate())
    assert names(events) == [
        "Workflow.DescriptionChanged",
        "Workflow.Deactivated",
        "Workflow.Activated",
    ]
    assert events[0].previous is None and events[0].description == "new words"
    assert workflow.current_version == 1


def test_an_invalid_new_definition_is_refused_whole() -> None:
    workflow = given(created())
    with pytest.raises(InvalidInput) as raised:
        workflow.update(
            {"description": "ok", "start_step": "missing", "name": "renamed"},
            AGENTS,
        )
    assert problems(raised.value) == [
        ("name", "is not an updatable field"),
        ("start_step", "step 'missing' does not exist"),
    ]
    assert history(workflow) == []
    assert workflow.description is None


def test_an_update_referencing_an_inactive_agent_is_refused() -> None:
    workflow = given(created())
    steps = with_step("late", {"agent_name": "sleepy", "depends_on": ["summarise"]})
    with pytest.raises(InvalidInput) as raised:
        workflow.update({"steps": steps}, AGENTS)
    assert problems(raised.value) == [
        ("steps.late.agent_name", "agent 'sleepy' is inactive; steps may only use active agents")
    ]


def test_agents_to_check_are_those_of_the_definition_an_update_would_make() -> None:
    workflow = given(created())
    assert workflow.agents_to_check({"description": "x"}) == set()
    assert workflow.agents_to_check({"variables": {}}) == {"fetcher", "summarizer"}
    assert workflow.agents_to_check({"steps": {"s": {"agent_name": "other"}}}) == {"other"}


def test_deleting_is_soft_idempotent_and_final() -> None:
    workflow = given(created())
    assert names(when(workflow, lambda w: w.delete())) == ["Workflow.Deleted"]
    assert when(workflow, lambda w: w.delete()) == []
    assert workflow.status == "deleted"
    assert workflow.plan_of(1).step_ids == ("fetch", "summarise")
    for command in (
        lambda w: w.update({"description": "x"}, AGENTS),
        lambda w: w.activate(),
        lambda w: w.deactivate(),
    ):
        with pytest.raises(Conflict, match="is deleted"):
            command(workflow)


def test_the_audit_log_leaves_the_plan_out_of_a_version() -> None:
    events = created()
    row = audit_row(events[0], position=1)
    assert row["action"] == "create"
    assert row["entity_type"] == "workflow"
    assert set(row["changes"]) == {"name", "description", "definition"}
