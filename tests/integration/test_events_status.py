"""``flowledger events status``: each projection's lag as ``projections status`` measures it,
the Kafka relay's progress and the webhook backlog."""

from __future__ import annotations

import json

import pytest

from flowledger.cli import projections
from flowledger.cli.events import events_status
from flowledger.commands.agents import RegisterAgent, register_agent
from flowledger.commands.webhooks import RegisterWebhook, register_webhook
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.agents import AgentsProjection
from flowledger.projections.projector import Projector
from flowledger.projections.registry import all_projections
from flowledger.projections.webhooks import WebhooksProjection
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="status-test")


def test_events_status_reports_the_lag_projections_status_reports(
    runtime: Runtime, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    register_webhook(runtime.store, RegisterWebhook(url="http://h", secret="s" * 16), META)
    agents_caught_up = register_agent(runtime.store, RegisterAgent(name="a", url="http://a"), META)
    for projection in (AgentsProjection(), WebhooksProjection()):
        Follower(runtime.store, Projector(projection, runtime.store, runtime.engine)).catch_up()
    register_agent(runtime.store, RegisterAgent(name="b", url="http://b"), META)
    head = runtime.store.head()

    assert events_status(settings) == 0
    events = json.loads(capsys.readouterr().out)
    assert projections.status(runtime, as_json=True) == 0
    followers = {f["name"]: f for f in json.loads(capsys.readouterr().out)["followers"]}

    assert events["head_position"] == head
    assert list(events["projections"]) == [p.name for p in all_projections()]
    for name, reported in events["projections"].items():
        same = followers[name]
        assert reported == {"position": same["position"], "lag_events": same["lag_events"]}
    assert events["projections"]["agents"] == {
        "position": agents_caught_up.position,
        "lag_events": head - (agents_caught_up.position or 0),
    }
    assert events["projections"]["audit_log"] == {"position": 0, "lag_events": head}
    assert events["relay"] is None, "no relay has run"
    assert events["webhooks"] == {"pending": 2, "failed": 0}, "its own ping, and agent a"
