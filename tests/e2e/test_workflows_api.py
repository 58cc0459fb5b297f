"""Workflows over HTTP, through the real app with projections following in-process."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import select

from flowledger.projections.tables import audit_log
from flowledger.runtime.process import Runtime
from tests.support.http import ApiClient

pytestmark = pytest.mark.e2e

AGENTS = "/api/v1/agents"
WORKFLOWS = "/api/v1/workflows"
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
            "input_mapping": {"text": "$.steps.fetch.output.text", "style": "$.vars.style"},
        },
    },
    "variables": {"style": "bullets"},
}


def register_agent(api: ApiClient, name: str) -> str:
    response = api.post(AGENTS, json={"name": name, "url": f"http://127.0.0.1:9101/{name}"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def agents(api: ApiClient) -> dict[str, str]:
    return {name: register_agent(api, name) for name in ("fetcher", "summarizer")}


def create(api: ApiClient, name: str = "summarise-page", **fields: Any) -> dict[str, Any]:
    body = {"name": name, **copy.deepcopy(TWO_STEPS), **fields}
    response = api.post(WORKFLOWS, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def errors_of(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return [(e["field"], e["message"]) for e in response.json()["errors"]]


def test_create_update_and_read_every_version(api: ApiClient, agents: dict[str, str]) -> None:
    created = api.post(
        WORKFLOWS, json={"name": "summarise-page", "description": "two steps", **TWO_STEPS}
    )
    assert created.status_code == 201, created.text
    workflow = created.json()
    assert created.headers["Location"] == f"{WORKFLOWS}/{workflow['id']}"
    assert workflow["version"] == 1 and workflow["status"] == "active"
    assert {k: workflow[k] for k in TWO_STEPS} == TWO_STEPS
    assert workflow["triggers"] is None and workflow["input_schema"] is None
    url = f"{WORKFLOWS}/{workflow['id']}"
    assert api.get(url).json() == workflow

    steps_v2 = copy.deepcopy(TWO_STEPS["steps"])
    steps_v2["notify"] = {"agent_name": "fetcher", "depends_on": ["summarise"]}
    updated = api.put(url, json={"steps": steps_v2, "variables": {"style": "prose"}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert api.get(url).json() == updated.json()
    assert list(api.get(url).json()["steps"]) == ["fetch", "summarise", "notify"], "as written"

    versions = api.get(f"{url}/versions").json()
    assert (versions["total"], versions["page"], versions["total_pages"]) == (2, 1, 1)
    assert [v["version"] for v in versions["items"]] == [1, 2]
    assert versions["items"][0]["changes"] is None
    assert versions["items"][1]["changes"] == {
        "from_version": 1,
        "steps_added": ["notify"],
        "steps_removed": [],
        "steps_changed": {},
        "fields_changed": ["variables"],
    }
    assert versions["items"][1]["created_by"] == "admin-env"
    newest_first = api.get(f"{url}/versions", params={"order": "desc", "page_size": 1}).json()
    assert [v["version"] for v in newest_first["items"]] == [2]
    assert newest_first["total_pages"] == 2

    first = api.get(f"{url}/versions/1").json()
    assert {k: first[k] for k in TWO_STEPS} == TWO_STEPS
    assert first["workflow_id"] == workflow["id"] and first["steps"] == TWO_STEPS["steps"]
    assert api.get(f"{url}/versions/2").json()["steps"] == steps_v2
    missing = api.get(f"{url}/versions/3")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"workflow {workflow['id']} has no version 3"


def test_the_definition_may_come_as_one_object(api: ApiClient, agents: dict[str, str]) -> None:
    graph = {
        "steps": {
            "fetch": {"agent_name": "fetcher"},
            "left": {"agent_name": "summarizer", "depends_on": ["fetch"]},
            "right": {"agent_name": "summarizer", "depends_on": ["fetch"]},
            "join": {"agent_name": "fetcher", "depends_on": ["left", "right"]},
        },
        "max_parallel_steps": 2,
    }
    response = api.post(
        WORKFLOWS,
        json={
            "name": "diamond",
            "definition": graph,
            "variables": {"n": 1},
            "triggers": [{"type": "schedule", "cron": "0 * * * *"}],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["steps"] == graph["steps"] and body["max_parallel_steps"] == 2
    assert body["start_step"] is None and body["variables"] == {"n": 1}

    url = f"{WORKFLOWS}/{body['id']}"
    replaced = api.put(url, json={"definition": {"steps": {"only": {"agent_name": "fetcher"}}}})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["max_parallel_steps"] is None, "the object is replaced whole"
    assert replaced.json()["variables"] == {"n": 1}, "fields outside it are kept"

    bad = api.put(url, json={"definition": {"start_step": "x", "steps": {"a": {}}}})
    assert errors_of(bad) == [
        ("definition.steps.a.agent_name", "is required"),
        ("definition.start_step", "step 'x' does not exist"),
    ]
    both = api.post(WORKFLOWS, json={"name": "x", "definition": graph, "steps": graph["steps"]})
    assert errors_of(both) == [
        (
            "definition",
            "give the definition as this object or as top-level fields, not both (top-level: "
            "steps)",
        )
    ]
    unknown = api.post(WORKFLOWS, json={"name": "x", "definition": {**graph, "variables": {}}})
    assert errors_of(unknown) == [("definition.variables", "is not a known field")]


CYCLE = {
    "start_step": "a",
    "steps": {
        "a": {"agent_name": "fetcher", "next_step": "b"},
        "b": {"agent_name": "fetcher", "next_step": "c"},
        "c": {"agent_name": "fetcher", "next_step": "a"},
    },
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(CYCLE, [("steps", "steps form a cycle: a -> b -> c -> a")], id="cycle"),
        pytest.param(
            {**TWO_STEPS, "start_step": "begin"},
            [("start_step", "step 'begin' does not exist")],
            id="missing start step",
        ),
        pytest.param(
            {"steps": {"a": {"agent_name": "nobody"}}},
            [("steps.a.agent_name", "no agent named 'nobody' is registered")],
            id="unknown agent",
        ),
        pytest.param(
            {
                "steps": {
                    "a": {"agent_name": "fetcher", "input_mapping": {"q": "$.steps.b.output.x"}},
                    "b": {"agent_name": "fetcher", "input_mapping": {"q": "$.inputs.x"}},
                }
            },
            [
                ("steps.a.input_mapping.q", "step 'b' is not upstream of this step"),
                (
                    "steps.b.input_mapping.q",
                    "'$.inputs.x' must start with $.input, $.vars or $.steps",
                ),
            ],
            id="bad mappings",
        ),
        pytest.param(
            {"steps": {"a": {"agent_name": "fetcher", "input_mapping": {"v": "$.vars.nope"}}}},
            [("steps.a.input_mapping.v", "variable 'nope' is not defined")],
            id="unknown variable",
        ),
        pytest.param(
            {"steps": {"a": {"agent_name": "fetcher", "next_step": "ghost"}}},
            [("steps.a.next_step", "step 'ghost' does not exist")],
            id="unknown next step",
        ),
        pytest.param(
            {"steps": {"a": {"agent_name": "fetcher", "depends_on": ["ghost"]}}},
            [("steps.a.depends_on.0", "step 'ghost' does not exist")],
            id="unknown dependency",
        ),
        pytest.param(
            {
                "start_step": "a",
                "steps": {"a": {"agent_name": "fetcher"}, "b": {"agent_name": "fetcher"}},
            },
            [("steps.b", "is not reachable from the start step 'a'")],
            id="unreachable step",
        ),
        pytest.param(
            {"steps": {"a": {"agent_name": "fetcher"}}, "input_schema": {"type": 12}},
            [("input_schema.type", "12 is not valid under any of the given schemas")],
            id="invalid input schema",
        ),
        pytest.param(
            {"steps": {"a": {"agent_name": "fetcher", "colour": "red"}}},
            [("steps.a.colour", "is not a known step field")],
            id="unknown step field",
        ),
        pytest.param(
            {"steps": {"a": {"agent_name": "fetcher"}}, "triggers": [{"type": "schedule"}]},
            [("triggers.0.cron", "is required for schedule triggers")],
            id="trigger without cron",
        ),
        pytest.param(
            {"steps": {"a": {"agent_name": "fetcher"}}, "timeout_ms": 10},
            [("timeout_ms", "Expected `int` >= 1000")],
            id="workflow timeout",
        ),
        pytest.param(
            {"steps": {"a": {"agent_name": "fetcher", "timeout_ms": 10}}},
            [("steps.a.timeout_ms", "must be between 1000 and 300000")],
            id="step timeout",
        ),
        pytest.param({}, [("steps", "is required")], id="no steps"),
        pytest.param(
            {"steps": {"a": {"agent_name": "fetcher"}}, "owner": "me"},
            [("owner", "is not a known field")],
            id="unknown field",
        ),
    ],
)
def test_each_invalid_definition_is_a_422_naming_the_problem(
    api: ApiClient, agents: dict[str, str], body: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert errors_of(api.post(WORKFLOWS, json={"name": "bad", **body})) == expected
    assert api.get(WORKFLOWS).json()["total"] == 0


def test_steps_may_not_use_inactive_or_deleted_agents(
    api: ApiClient, agents: dict[str, str]
) -> None:
    workflow = create(api)
    api.put(f"{AGENTS}/{agents['fetcher']}", json={"status": "inactive"})
    api.delete(f"{AGENTS}/{agents['summarizer']}")
    expected = [
        ("steps.fetch.agent_name", "agent 'fetcher' is inactive; steps may only use active agents"),
        ("steps.summarise.agent_name", "no agent named 'summarizer' is registered"),
    ]
    assert errors_of(api.post(WORKFLOWS, json={"name": "other", **TWO_STEPS})) == expected
    new_version = api.put(f"{WORKFLOWS}/{workflow['id']}", json={"variables": {"style": "x"}})
    assert errors_of(new_version) == expected
    no_version = api.put(f"{WORKFLOWS}/{workflow['id']}", json={"description": "still fine"})
    assert no_version.status_code == 200, "changes outside the definition do not re-check agents"

    register_agent(api, "summarizer")  # the name now belongs to a new, active agent
    api.put(f"{AGENTS}/{agents['fetcher']}", json={"status": "active"})
    assert api.post(WORKFLOWS, json={"name": "other", **TWO_STEPS}).status_code == 201


def test_description_and_status_changes_make_no_new_version(
    api: ApiClient, agents: dict[str, str]
) -> None:
    url = f"{WORKFLOWS}/{create(api)['id']}"
    response = api.put(url, json={"description": "now described", "status": "inactive"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["description"], body["status"], body["version"]) == (
        "now described",
        "inactive",
        1,
    )
    unchanged = api.put(url, json=copy.deepcopy(TWO_STEPS))
    assert unchanged.status_code == 200 and unchanged.json()["version"] == 1
    assert "X-Flowledger-Position" not in unchanged.headers, "nothing was written"
    assert api.get(f"{url}/versions").json()["total"] == 1
    assert api.get(url).json()["status"] == "inactive"
    cleared = api.put(url, json={"description": None, "status": "active"}).json()
    assert cleared["description"] is None and cleared["status"] == "active"


def test_names_are_unique_until_deleted_and_deleted_workflows_stay_readable(
    api: ApiClient, agents: dict[str, str]
) -> None:
    workflow = create(api)
    url = f"{WORKFLOWS}/{workflow['id']}"
    duplicate = api.post(WORKFLOWS, json={"name": "summarise-page", **TWO_STEPS})
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "workflow name 'summarise-page' is already taken"}
    assert api.put(url, json={"name": "renamed"}).status_code == 422

    assert api.delete(url).status_code == 204
    assert api.delete(url).status_code == 204
    assert api.get(url).json()["status"] == "deleted"
    assert api.get(f"{url}/versions/1").status_code == 200
    assert api.get(WORKFLOWS).json()["total"] == 0
    assert api.get(WORKFLOWS, params={"status": "deleted"}).json()["total"] == 1
    refused = api.put(url, json={"description": "x"})
    assert refused.status_code == 409 and "deleted" in refused.json()["detail"]
    assert create(api)["id"] != workflow["id"]


def test_unknown_workflows_are_404s(api: ApiClient) -> None:
    url = f"{WORKFLOWS}/00000000-0000-0000-0000-000000000000"
    for response in (
        api.get(url),
        api.put(url, json={"description": "x"}),
        api.delete(url),
        api.get(f"{url}/versions"),
        api.get(f"{url}/versions/1"),
    ):
        assert response.status_code == 404, response.text
    assert api.get(url).json() == {
        "detail": "workflow 00000000-0000-0000-0000-000000000000 not found"
    }
    assert api.get(f"{url}/versions/0").status_code == 422


def test_lists_filter_by_name_status_and_agent_sort_and_paginate(
    api: ApiClient, agents: dict[str, str]
) -> None:
    only_fetch = {"steps": {"s": {"agent_name": "fetcher"}}}
    for name in ["beta", "alpha", "Gamma", "alphabet", "100%_match"]:
        create(api, name, **(only_fetch if name == "beta" else {}), start_step=None)
    ids = {w["name"]: w["id"] for w in api.get(WORKFLOWS, params={"page_size": 10}).json()["items"]}
    api.put(f"{WORKFLOWS}/{ids['alpha']}", json={"status": "inactive"})
    api.put(f"{WORKFLOWS}/{ids['Gamma']}", json={"description": "touched last"})

    def names(**params: Any) -> list[str]:
        response = api.get(WORKFLOWS, params=params)
        assert response.status_code == 200, response.text
        return [w["name"] for w in response.json()["items"]]

    by_name = ["100%_match", "Gamma", "alpha", "alphabet", "beta"]
    assert names(sort="name") == by_name
    assert names(sort="name", order="desc") == by_name[::-1]
    assert names() == ["beta", "alpha", "Gamma", "alphabet", "100%_match"], "created_at asc"
    assert names(sort="created_at", order="desc") == [
        "100%_match",
        "alphabet",
        "Gamma",
        "alpha",
        "beta",
    ]
    assert names(sort="updated_at", order="desc")[:2] == ["Gamma", "alpha"]
    assert names(sort="updated_at")[0] == "beta"
    assert names(name="ALPHA", sort="name") == ["alpha", "alphabet"]
    assert names(name="%_") == ["100%_match"]
    assert names(status="inactive") == ["alpha"]
    assert names(status="active", sort="name") == ["100%_match", "Gamma", "alphabet", "beta"]
    assert names(agent_name="summarizer", sort="name") == [
        "100%_match",
        "Gamma",
        "alpha",
        "alphabet",
    ]
    assert names(agent_name="nobody") == []

    page = api.get(WORKFLOWS, params={"sort": "name", "page": 2, "page_size": 2}).json()
    assert (page["total"], page["total_pages"], page["page"], page["page_size"]) == (5, 3, 2, 2)
    assert [w["name"] for w in page["items"]] == ["alpha", "alphabet"]
    for params in (
        {"page": 0},
        {"page_size": 101},
        {"sort": "status"},
        {"order": "up"},
        {"status": "gone"},
    ):
        response = api.get(WORKFLOWS, params=params)
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["location"] == "query"


def test_every_change_has_an_audit_row_and_new_versions_say_what_changed(
    api: ApiClient, agents: dict[str, str], runtime: Runtime
) -> None:
    workflow = create(api)
    url = f"{WORKFLOWS}/{workflow['id']}"
    steps = copy.deepcopy(TWO_STEPS["steps"])
    del steps["summarise"]
    steps["fetch"].pop("next_step")
    api.put(url, json={"steps": steps, "variables": None})
    api.put(url, json={"description": "d", "status": "inactive"})
    api.delete(url)
    api.get(WORKFLOWS)  # waits for the projections to reach the last write
    with runtime.engine.connect() as conn:
        rows = (
            conn.execute(
                select(audit_log)
                .where(audit_log.c.entity_type == "workflow")
                .order_by(audit_log.c.position)
            )
            .mappings()
            .all()
        )
    assert [(r["action"], r["event_type"]) for r in rows] == [
        ("create", "WorkflowCreated"),
        ("update", "WorkflowUpdated"),
        ("description_changed", "WorkflowDescriptionChanged"),
        ("deactivate", "WorkflowDeactivated"),
        ("delete", "WorkflowDeleted"),
    ]
    assert rows[0]["changes"]["definition"] == TWO_STEPS
    assert "plan" not in rows[0]["changes"] and "plan" not in rows[1]["changes"]
    assert rows[1]["changes"]["version"] == 2
    assert rows[1]["changes"]["changes"] == {
        "from_version": 1,
        "steps_added": [],
        "steps_removed": ["summarise"],
        "steps_changed": {"fetch": ["next_step"]},
        "fields_changed": ["variables"],
    }
    assert rows[2]["changes"] == {"description": "d", "previous": None}


def test_the_workflow_routes_are_documented_and_their_examples_work(api: ApiClient) -> None:
    spec = api.get("/openapi.json").json()
    operations = {
        operation["operationId"]
        for path, methods in spec["paths"].items()
        if path.startswith(WORKFLOWS)
        for operation in methods.values()
        if not {"runs", "grants"} & set(operation.get("tags", []))
    }
    assert operations == {
        "createWorkflow",
        "listWorkflows",
        "getWorkflow",
        "updateWorkflow",
        "deleteWorkflow",
        "listWorkflowVersions",
        "getWorkflowVersion",
    }
    create_body = spec["components"]["schemas"]["WorkflowCreate"]
    assert create_body["properties"]["steps"]["examples"]
    assert set(create_body["required"]) == {"name"}

    for name in ("fetcher", "summarizer", "planner", "searcher"):
        register_agent(api, name)
    request = spec["paths"][WORKFLOWS]["post"]["requestBody"]["content"]["application/json"]
    examples = request["schema"]["examples"]
    assert len(examples) == 3  # the chain, the graph, control flow
    for example in examples:
        assert api.post(WORKFLOWS, json=example).status_code == 201, example
    chain = api.get(WORKFLOWS, params={"name": "summarise-page"}).json()["items"][0]
    update_url = f"{WORKFLOWS}/{chain['id']}"
    update = spec["paths"][f"{WORKFLOWS}/{{workflow_id}}"]["put"]["requestBody"]
    for example in update["content"]["application/json"]["schema"]["examples"]:
        assert api.put(update_url, json=example).status_code == 200, example
