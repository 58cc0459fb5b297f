"""The live event stream over a real HTTP server: replays from a position, follows new events
as they are recorded, resumes from ``Last-Event-ID`` with no gap and no repeat, filters, a
per-run stream, keep-alives, and an end when the client goes away."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from eventsourcing.domain import Aggregate, event
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from litestar import Litestar

from flowledger.commands.agents import RegisterAgent, register_agent
from flowledger.eventlog.envelope import Envelope, decode, envelopes
from flowledger.eventlog.store import EventMetadata
from flowledger.http.app import create_app
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.conftest import make_settings
from tests.support.http import ADMIN_API_KEY, ApiClient
from tests.support.polling import eventually
from tests.support.server import serving
from tests.support.sse import Message, messages

pytestmark = pytest.mark.e2e
META = EventMetadata(actor="stream-test", correlation_id="c-1", traceparent=None)
STREAM = "/api/v1/events/stream"


class Probe(Aggregate):
    """A stand-in for aggregates still to come (runs and their steps)."""

    @event("Started")
    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id

    @event("Noted")
    def note(self, run_id: str, text: str) -> None:
        pass


@pytest.fixture
def settings(database: Database) -> Settings:
    return make_settings(database, extra={"FLOWLEDGER_STREAM_KEEPALIVE": "0.3"})


@pytest.fixture
def app(settings: Settings, runtime: Runtime) -> Litestar:
    return create_app(settings, runtime=runtime)


@pytest.fixture
def base_url(app: Litestar) -> Iterator[str]:
    with serving(app) as url:
        yield url


@contextmanager
def stream(base_url: str, path: str = STREAM, **kwargs: Any) -> Iterator[Iterator[Message]]:
    timeout = httpx.Timeout(30.0)  # a guard: keep-alives arrive every 0.3 s
    with (
        httpx.Client(
            base_url=base_url, timeout=timeout, headers={"X-API-Key": ADMIN_API_KEY}
        ) as client,
        client.stream("GET", path, **kwargs) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield messages(response)


def take(source: Iterator[Message], count: int) -> list[tuple[int, Envelope]]:
    found: list[tuple[int, Envelope]] = []
    while len(found) < count:
        message = next(source)
        if message.data is not None:
            assert message.id is not None
            found.append((int(message.id), decode(message.data)))
    return found


def register(runtime: Runtime, name: str) -> None:
    register_agent(runtime.store, RegisterAgent(name=name, url="http://a"), META)


def public(runtime: Runtime) -> list[Envelope]:
    return envelopes(runtime.store, runtime.store.read(None, 100_000))


def test_the_stream_replays_from_a_position_then_follows_new_events_live(
    runtime: Runtime, base_url: str
) -> None:
    register(runtime, "echo")
    register(runtime, "summarizer")
    recorded = public(runtime)
    with stream(base_url, params={"from_position": 0}) as source:
        replayed = take(source, len(recorded))
        assert [e for _, e in replayed] == recorded
        assert [p for p, _ in replayed] == [e.position for e in recorded]
        register(runtime, "late")
        [(_, late)] = take(source, 1)
    assert late.event_type == "AgentRegistered"
    assert late.data["name"] == "late"
    assert late.actor == "stream-test" and late.correlation_id == "c-1"


def test_by_default_the_stream_starts_with_events_recorded_after_connecting(
    runtime: Runtime, base_url: str
) -> None:
    register(runtime, "before")
    with stream(base_url) as source:
        first = next(source)  # the stream is open: it sends a comment and a retry hint
        assert first.data is None and first.retry is not None
        register(runtime, "after")
        [(_, envelope)] = take(source, 1)
    assert envelope.data["name"] == "after"


@examples(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=st.integers(1, 4), read_first=st.integers(0, 4), after=st.integers(0, 3))
def test_a_reconnect_with_last_event_id_continues_with_no_gap_and_no_repeat(
    runtime: Runtime, base_url: str, before: int, read_first: int, after: int
) -> None:
    start = runtime.store.head()
    for i in range(before):
        register(runtime, f"before-{start}-{i}")
    read_first = min(read_first, before)
    with stream(base_url, params={"from_position": start}) as source:
        first = take(source, read_first)
    for i in range(after):
        register(runtime, f"after-{start}-{i}")
    expected = [e for e in public(runtime) if e.position > start]
    last_id = str(first[-1][0]) if first else str(start)
    with stream(base_url, headers={"Last-Event-ID": last_id}) as source:
        rest = take(source, len(expected) - len(first))
    assert [e for _, e in first + rest] == expected


def test_filters_and_the_stream_of_one_run(runtime: Runtime, base_url: str) -> None:
    run = Probe()
    runtime.store.record(run, metadata=META)
    other_run = Probe()
    register(runtime, "noise")
    step = Probe(run_id=str(run.id))
    step.note(run_id=str(run.id), text="step one done")
    other_run.note(run_id=str(other_run.id), text="elsewhere")
    runtime.store.record(step, other_run, metadata=META)
    everything = public(runtime)

    def expect(events: list[Envelope], path: str = STREAM, **params: Any) -> None:
        with stream(base_url, path, params={"from_position": 0, **params}) as source:
            assert [e for _, e in take(source, len(events))] == events

    run_events = [
        e for e in everything if e.aggregate_id == run.id or e.data.get("run_id") == str(run.id)
    ]
    assert len(run_events) == 3
    expect(run_events, f"/api/v1/runs/{run.id}/events/stream")
    expect(run_events, run_id=str(run.id))
    agents_only = [e for e in everything if e.aggregate_type == "agent"]
    expect(agents_only, aggregate_type="agents")
    noted = [e for e in everything if e.event_type == "ProbeNoted"]
    expect(noted, event_type="*Noted")
    expect(noted, event_type="ProbeNoted,Nothing")
    mine = [e for e in everything if e.aggregate_id == other_run.id]
    expect(mine, aggregate_id=str(other_run.id))


def test_keep_alives_flow_and_the_stream_ends_when_the_client_goes_away(
    app: Litestar, base_url: str
) -> None:
    with stream(base_url) as source:
        comments: list[str] = []
        while "keep-alive" not in comments:
            comments += next(source).comments
        assert app.state.events_listener.subscribers == 1
    eventually(
        lambda: app.state.events_listener.subscribers,
        lambda subscribers: subscribers == 0,
        what="the stream to end after the client left (subscribers)",
        timeout_s=20,
        interval_s=0.02,
    )


def test_a_last_event_id_that_is_not_a_position_is_a_422(base_url: str) -> None:
    response = httpx.get(
        f"{base_url}{STREAM}", headers={"Last-Event-ID": "abc", "X-API-Key": ADMIN_API_KEY}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Last-Event-ID"


def test_a_catch_up_read_sends_what_is_recorded_and_ends(api: ApiClient) -> None:
    for name in ("one", "two"):
        api.post("/api/v1/agents", json={"name": name, "url": "http://127.0.0.1:9"})
    response = api.get(
        "/api/v1/events/stream",
        params={"from_position": 0, "follow": "false", "event_type": "AgentRegistered"},
    )
    assert response.status_code == 200
    names = [line for line in response.text.splitlines() if line.startswith("data:")]
    assert len(names) == 2 and '"name":"one"' in names[0] and '"name":"two"' in names[1]
