"""Contract checks against real sample agents: the ``transform`` agent's card declares its
skill's input and output schemas (the skill schemas extension), ``echo``'s declares none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flowledger.http.app import create_app
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.support.agents import get_stats, running_all
from tests.support.http import ApiClient

pytestmark = pytest.mark.e2e
DECLARES = "(it declares: length, text, word_count)"


@pytest.fixture(scope="module")
def agent_urls() -> Iterator[dict[str, str]]:
    with running_all() as urls:
        yield urls


@pytest.fixture
def api(settings: Settings, runtime: Runtime, agent_urls: dict[str, str]) -> Iterator[ApiClient]:
    with ApiClient(create_app(settings, runtime=runtime, workers=("projections",))) as client:
        for name in ("echo", "transform"):
            response = client.post("/api/v1/agents", json={"name": name, "url": agent_urls[name]})
            assert response.status_code == 201, response.text
        yield client


def news(**changes: Any) -> dict[str, Any]:
    return {
        "name": "news",
        "start_step": "shout",
        "steps": {
            "shout": {"agent_name": "transform", "next_step": "report",
                      "input_mapping": {"text": "$.input.headline"}},
            "report": {"agent_name": "echo",
                       "input_mapping": {"loud": "$.steps.shout.output.text",
                                         "words": "$.steps.shout.output.words"}},
        },
        "input_schema": {"type": "object", "properties": {"headline": {"type": "integer"}}},
        **changes,
    }  # fmt: skip


def problems(body: dict[str, Any], key: str) -> dict[tuple[str, str], str]:
    return {(p["step_id"], p["field"]): p["message"] for p in body[key]}


def test_saving_with_check_contracts_warns_where_mappings_do_not_fit_the_agents_cards(
    api: ApiClient,
) -> None:
    created = api.post("/api/v1/workflows", params={"check": "contracts"}, json=news())
    assert created.status_code == 201, created.text
    assert problems(created.json(), "warnings") == {
        ("shout", "input_mapping.text"): "$.input.headline is integer; agent 'transform' "
        "expects string",
        ("report", "input_mapping.words"): "$.steps.shout.output.words: agent 'transform' does "
        f"not declare 'words' in its output {DECLARES}",
    }
    workflow_id = created.json()["id"]
    fixed = news()
    fixed["steps"]["report"]["input_mapping"]["words"] = "$.steps.shout.output.word_count"
    fixed["input_schema"]["properties"]["headline"]["type"] = "string"
    del fixed["name"]
    updated = api.put(f"/api/v1/workflows/{workflow_id}", params={"check": "contracts"}, json=fixed)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["version"], updated.json()["warnings"]) == (2, [])
    unchecked = api.put(f"/api/v1/workflows/{workflow_id}", json={"description": "daily"})
    assert unchecked.json()["warnings"] is None
    assert api.get(f"/api/v1/workflows/{workflow_id}").json()["warnings"] is None
    refused = api.post("/api/v1/workflows", params={"check": "everything"}, json=news(name="x"))
    assert refused.status_code == 422


def test_a_dry_run_catches_a_mismatched_mapping_and_values_that_do_not_fit(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    workflow_id = api.post("/api/v1/workflows", json=news(input_schema={"type": "object"})).json()[
        "id"
    ]
    calls = get_stats(agent_urls["transform"])["calls"]
    trace = api.post(
        f"/api/v1/workflows/{workflow_id}/test",
        json={"input_data": {"headline": 42}, "mock_outputs": {"shout": {"text": 7}}},
    )
    assert trace.status_code == 200, trace.text
    result = trace.json()
    assert result["status"] == "FAILED", "report reads a field the mock does not have"
    assert problems(result, "contract_problems") == {
        ("shout", "input.text"): "42 is not of type 'string'",
        ("shout", "output.text"): "mocked output: 7 is not of type 'string'",
        ("report", "input_mapping.words"): "$.steps.shout.output.words: agent 'transform' does "
        f"not declare 'words' in its output {DECLARES}",
    }
    assert {
        c["agent_name"]: (c["declared"], c["skills"], c["error"]) for c in result["contracts"]
    } == {
        "transform": (True, ["transform"], None),
        "echo": (False, [], None),
    }
    assert get_stats(agent_urls["transform"])["calls"] == calls, "cards are read, no agent called"

    fits = api.post(
        f"/api/v1/workflows/{workflow_id}/test",
        json={
            "input_data": {"headline": "calm"},
            "mock_outputs": {"shout": {"text": "CALM", "words": 1, "length": 4, "word_count": 1}},
        },
    ).json()
    assert fits["status"] == "SUCCEEDED"
    assert [p["field"] for p in fits["contract_problems"]] == ["input_mapping.words"]
    unchecked = api.post(
        f"/api/v1/workflows/{workflow_id}/test",
        json={"input_data": {"headline": 42}, "check_contracts": False},
    ).json()
    assert (unchecked["contract_problems"], unchecked["contracts"]) == ([], [])


def test_an_agent_whose_card_cannot_be_read_is_reported_not_checked(api: ApiClient) -> None:
    api.post("/api/v1/agents", json={"name": "ghost", "url": "http://127.0.0.1:9"})
    body = {"name": "haunted", "steps": {"boo": {"agent_name": "ghost", "input_mapping": {}}}}
    created = api.post("/api/v1/workflows", params={"check": "contracts"}, json=body)
    assert created.status_code == 201, created.text
    [warning] = created.json()["warnings"]
    assert warning["field"] == "agents.ghost"
    assert warning["message"].startswith("not checked: its card could not be read")
    trace = api.post(f"/api/v1/workflows/{created.json()['id']}/test", json={}).json()
    assert trace["status"] == "SUCCEEDED" and trace["contract_problems"] == []
    [status] = trace["contracts"]
    assert status["agent_name"] == "ghost" and status["error"]
