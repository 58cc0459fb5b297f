"""Agents over HTTP, through the real Litestar app with projections following in-process."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from flowledger.http.app import create_app
from flowledger.projections.tables import audit_log, tracking_table
from flowledger.runtime.process import Runtime
from tests.support.agents import running_agent
from tests.support.http import ApiClient
from tests.support.polling import eventually
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e

AGENTS = "/api/v1/agents"


def wait_for_projection(runtime: Runtime, projection: str, position: int) -> None:
    """Reads wait for the projection they read; the audit log is read here directly."""
    tracking = tracking_table(projection)

    def reached() -> int:
        with runtime.engine.connect() as conn:
            return int(conn.execute(select(func.max(tracking.c.notification_id))).scalar() or 0)

    eventually(
        reached,
        lambda at: at >= position,
        what=f"{projection} to reach position {position}",
        timeout_s=10,
        interval_s=0.02,
    )


def register(api: ApiClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "echo", "url": "http://127.0.0.1:9101", **fields}
    response = api.post(AGENTS, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_register_read_update_deactivate_and_delete_an_agent(api: ApiClient) -> None:
    created = register(
        api,
        description="echoes",
        auth_type="bearer",
        auth_config={"token": "s3cret"},
        retry_config={"max_retries": 2},
    )
    assert created["auth_config"] == {"token": "********"}
    assert created["retry_config"]["max_retries"] == 2
    agent_url = f"{AGENTS}/{created['id']}"

    read = api.get(agent_url).json()
    assert read == created

    updated = api.put(
        agent_url, json={"timeout_ms": 5000, "retry_config": {"initial_delay_ms": 200}}
    )
    assert updated.status_code == 200
    assert updated.json()["timeout_ms"] == 5000
    assert updated.json()["retry_config"] == {
        "max_retries": 2, "initial_delay_ms": 200, "max_delay_ms": 30000, "backoff_multiplier": 2.0,
    }  # fmt: skip
    assert api.get(agent_url).json()["version"] == 2

    assert api.put(agent_url, json={"status": "inactive"}).json()["status"] == "inactive"
    assert api.get(AGENTS, params={"status": "inactive"}).json()["total"] == 1

    deleted = api.delete(agent_url)
    assert deleted.status_code == 204
    assert api.get(agent_url).json()["status"] == "deleted"
    assert api.get(AGENTS).json()["total"] == 0
    assert api.get(AGENTS, params={"status": "deleted"}).json()["total"] == 1
    assert api.delete(agent_url).status_code == 204
    refused = api.put(agent_url, json={"timeout_ms": 2000})
    assert refused.status_code == 409
    assert "deleted" in refused.json()["detail"]


def test_secrets_are_never_returned_nor_written_to_the_audit_log(
    api: ApiClient, runtime: Runtime
) -> None:
    created = register(
        api, auth_type="apikey", auth_config={"key": "top-secret", "header": "X-Key"}
    )
    api.put(f"{AGENTS}/{created['id']}", json={"auth_config": {"key": "new-secret"}})
    everything = api.get(AGENTS).text + api.get(f"{AGENTS}/{created['id']}").text
    assert (
        "secret" not in everything.replace("top-secret", "LEAK").lower() or "LEAK" not in everything
    )
    assert "top-secret" not in everything and "new-secret" not in everything
    wait_for_projection(runtime, "audit_log", api.position)
    with runtime.engine.connect() as conn:
        changes = [str(c) for c in conn.execute(select(audit_log.c.changes)).scalars()]
    assert changes and not any("top-secret" in c or "new-secret" in c for c in changes)


def test_a_duplicate_name_is_a_conflict_until_the_first_agent_is_deleted(api: ApiClient) -> None:
    first = register(api)
    duplicate = api.post(AGENTS, json={"name": "echo", "url": "http://elsewhere"})
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "agent name 'echo' is already taken"}
    api.delete(f"{AGENTS}/{first['id']}")
    assert api.post(AGENTS, json={"name": "echo", "url": "http://elsewhere"}).status_code == 201


def test_every_change_has_an_audit_row_with_actor_and_action(
    api: ApiClient, runtime: Runtime
) -> None:
    created = register(api)
    agent_url = f"{AGENTS}/{created['id']}"
    api.put(agent_url, json={"description": "new"}, headers={"X-Correlation-ID": "change-42"})
    api.put(agent_url, json={"status": "inactive"})
    api.put(agent_url, json={"status": "active"})
    api.delete(agent_url)
    wait_for_projection(runtime, "audit_log", api.position)
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.position)).mappings().all()
    assert [r["action"] for r in rows] == ["create", "update", "deactivate", "activate", "delete"]
    assert {str(r["entity_id"]) for r in rows} == {created["id"]}
    assert {r["actor"] for r in rows} == {"admin-env"}
    assert rows[1]["correlation_id"] == "change-42"
    assert rows[1]["changes"] == {
        "changes": {"description": "new"},
        "previous": {"description": None},
    }


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"url": "http://a"}, "name", "is required"),
        ({"name": "", "url": "http://a"}, "name", "length >= 1"),
        ({"name": "x" * 256, "url": "http://a"}, "name", "length <= 255"),
        ({"name": "a"}, "url", "is required"),
        ({"name": "a", "url": "ftp://a"}, "url", "matching regex"),
        ({"name": "a", "url": "http://"}, "url", "must name a host"),
        ({"name": "a", "url": "http://a", "auth_type": "basic"}, "auth_type", "Invalid enum value"),
        (
            {"name": "a", "url": "http://a", "auth_type": "bearer"},
            "auth_config.token",
            "is required",
        ),
        ({"name": "a", "url": "http://a", "timeout_ms": 999}, "timeout_ms", ">= 1000"),
        ({"name": "a", "url": "http://a", "timeout_ms": 300_001}, "timeout_ms", "<= 300000"),
        ({"name": "a", "url": "http://a", "timeout_ms": "10s"}, "timeout_ms", "Expected `int`"),
        (
            {"name": "a", "url": "http://a", "retry_config": {"max_retries": 11}},
            "retry_config.max_retries",
            "<= 10",
        ),
        (
            {"name": "a", "url": "http://a", "retry_config": {"initial_delay_ms": 99}},
            "retry_config.initial_delay_ms",
            ">= 100",
        ),
        (
            {"name": "a", "url": "http://a", "retry_config": {"max_delay_ms": 999}},
            "retry_config.max_delay_ms",
            ">= 1000",
        ),
        (
            {"name": "a", "url": "http://a", "retry_config": {"backoff_multiplier": 0.5}},
            "retry_config.backoff_multiplier",
            ">= 1.0",
        ),
        (
            {"name": "a", "url": "http://a", "retry_config": {"jitter": True}},
            "retry_config.jitter",
            "is not a known field",
        ),
        ({"name": "a", "url": "http://a", "colour": "red"}, "colour", "is not a known field"),
    ],
)
def test_each_invalid_field_is_a_422_naming_the_field(
    api: ApiClient, body: dict[str, Any], field: str, fragment: str
) -> None:
    response = api.post(AGENTS, json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["field"] == field and fragment in e["message"] for e in errors), errors


def test_invalid_updates_are_422s_naming_the_field(api: ApiClient) -> None:
    agent_url = f"{AGENTS}/{register(api)['id']}"
    for body, field in [
        ({"name": "renamed"}, "name"),
        ({"status": "deleted"}, "status"),
        ({"timeout_ms": 0}, "timeout_ms"),
        ({"auth_type": "apikey"}, "auth_config.key"),
    ]:
        response = api.put(agent_url, json=body)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field


def test_malformed_json_is_a_400_and_unknown_agents_are_404s(api: ApiClient) -> None:
    response = api.post(AGENTS, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "detail" in response.json()
    missing = api.get(f"{AGENTS}/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "agent 00000000-0000-0000-0000-000000000000 not found"}
    assert api.put(f"{AGENTS}/00000000-0000-0000-0000-000000000000", json={}).status_code == 404
    assert api.get(f"{AGENTS}/not-a-uuid").status_code == 404


def test_lists_filter_by_name_and_status_sort_and_paginate(api: ApiClient) -> None:
    for name in ["beta", "alpha", "Gamma", "alphabet", "100%_match"]:
        register(api, name=name)
    by_name = api.get(AGENTS, params={"sort": "name", "order": "asc"}).json()
    assert [a["name"] for a in by_name["items"]] == [
        "100%_match",
        "Gamma",
        "alpha",
        "alphabet",
        "beta",
    ]
    descending = api.get(AGENTS, params={"sort": "name", "order": "desc"}).json()
    assert [a["name"] for a in descending["items"]] == [
        "beta",
        "alphabet",
        "alpha",
        "Gamma",
        "100%_match",
    ]

    assert [
        a["name"] for a in api.get(AGENTS, params={"name": "ALPHA", "sort": "name"}).json()["items"]
    ] == ["alpha", "alphabet"]
    assert [a["name"] for a in api.get(AGENTS, params={"name": "%_"}).json()["items"]] == [
        "100%_match"
    ]

    page = api.get(AGENTS, params={"sort": "name", "page": 2, "page_size": 2}).json()
    assert (
        page["total"] == 5
        and page["total_pages"] == 3
        and page["page"] == 2
        and page["page_size"] == 2
    )
    assert [a["name"] for a in page["items"]] == ["alpha", "alphabet"]
    assert api.get(AGENTS, params={"page": 9}).json()["items"] == []

    for params in (
        {"page": 0},
        {"page_size": 101},
        {"sort": "url"},
        {"order": "up"},
        {"status": "gone"},
    ):
        response = api.get(AGENTS, params=params)
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["location"] == "query"


def test_a_read_waits_for_the_position_a_write_returned(api: ApiClient) -> None:
    response = api.post(AGENTS, json={"name": "fresh", "url": "http://a"})
    position = response.headers["X-Flowledger-Position"]
    read = api.get(
        f"{AGENTS}/{response.json()['id']}", headers={"X-Flowledger-Min-Position": position}
    )
    assert read.status_code == 200
    assert read.json()["name"] == "fresh"


def test_a_read_that_cannot_reach_its_position_in_time_is_a_503(
    settings: Any, runtime: Runtime
) -> None:
    app = create_app(
        settings.with_overrides(read_wait_timeout_s=0.2), runtime=runtime
    )  # no projections running
    with ApiClient(app) as client:
        position = client.post(AGENTS, json={"name": "x", "url": "http://a"}).headers[
            "X-Flowledger-Position"
        ]
        response = client.get(AGENTS, headers={"X-Flowledger-Min-Position": position})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert f"not yet {position}" in response.json()["detail"]


def test_health_readiness_and_documentation(api: ApiClient) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    ready = api.get("/health/ready").json()
    assert ready["status"] == "ready" and ready["database"]["status"] == "ok"
    assert set(ready["projections"]) >= {"agents", "audit_log"}
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    operation = spec["paths"]["/api/v1/agents"]["post"]
    assert operation["operationId"] == "registerAgent"
    body_schema = spec["components"]["schemas"]["AgentCreate"]
    assert body_schema["properties"]["name"]["examples"] == ["summarizer"]
    for page in ("/docs", "/redoc"):
        response = api.get(page)
        assert response.status_code == 200 and "flowledger" in response.text
    unknown = api.get("/no/such/page")
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("No route")


def test_health_check_fetches_the_agent_card_with_the_agents_credentials(api: ApiClient) -> None:
    with running_agent("echo", "--require-bearer", "let-me-in") as url:
        good = register(
            api, name="echo", url=url, auth_type="bearer", auth_config={"token": "let-me-in"}
        )
        bad = register(
            api, name="wrong-token", url=url, auth_type="bearer", auth_config={"token": "nope"}
        )
        healthy = api.get(f"{AGENTS}/{good['id']}/health").json()
        assert healthy["reachable"] is True
        assert healthy["card_name"] and healthy["card_version"]
        assert healthy["latency_ms"] > 0
        # The card is public, so even a wrong token reaches it: health is about reachability.
        assert api.get(f"{AGENTS}/{bad['id']}/health").json()["reachable"] is True


def test_health_check_of_an_unreachable_agent_reports_the_error(api: ApiClient) -> None:
    created = register(api, name="gone", url=f"http://127.0.0.1:{free_port()}", timeout_ms=1000)
    report = api.get(f"{AGENTS}/{created['id']}/health")
    assert report.status_code == 200
    body = report.json()
    assert body["reachable"] is False
    assert body["error"]
    assert api.get(f"{AGENTS}/00000000-0000-0000-0000-000000000000/health").status_code == 404


def test_a_nul_character_in_a_filter_is_a_422_not_a_500(api: ApiClient) -> None:
    response = api.get(AGENTS, params={"name": "a\x00b"})
    assert response.status_code == 422
    assert "NUL" in response.json()["detail"]
