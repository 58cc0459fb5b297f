"""Run analytics against runs whose times the test sets: the clock of the event library is the
test's while it records them, so every run's creation, duration and step durations are known,
and each figure the API gives is checked against the same figure computed here from them."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import eventsourcing.domain
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowledger.domain.plans import StepPlan, WorkflowPlan
from flowledger.domain.runs import Run
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.run_analytics import RELATIVE_ACCURACY, percentiles
from flowledger.runtime.process import Runtime
from tests.support.http import ApiClient
from tests.support.runs import requested

pytestmark = pytest.mark.e2e

ANALYTICS = "/api/v1/analytics"
BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
"""The hour the busy workflow's runs start in (they go on into the next hour)."""
META = EventMetadata.system("analytics-test")
STATUSES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")


class Clock:
    """The event library's clock while runs are recorded: the test says what time it is."""

    def __init__(self) -> None:
        self.now = BASE

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def clock_of_the_events(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    with monkeypatch.context() as patch:
        patch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", clock)
        yield clock


@dataclass
class Expected:
    """What the analytics should say, kept as the runs are recorded."""

    created: list[tuple[UUID, datetime, str]] = field(default_factory=list)
    """(workflow, created at, final status) of every run."""
    durations: dict[UUID, list[int]] = field(default_factory=dict)
    """Each workflow's finished runs' durations (ms)."""
    steps: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(step, agent): the durations of its finished steps."""
    step_status: Counter[tuple[str, str]] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    failed_attempts: Counter[str] = field(default_factory=Counter)


@dataclass
class Recorder:
    runtime: Runtime
    clock: Clock
    expected: Expected
    position: int = 0

    def save(self, run: Run) -> None:
        self.position = self.runtime.store.record(run, metadata=META) or self.position

    def at(self, moment: datetime, action: Callable[[], Any], run: Run) -> None:
        self.clock.now = moment
        action()
        self.save(run)


def attempt_step(
    rec: Recorder, run: Run, step: str, agent: str, at: datetime, outcomes: list[tuple[str, int]]
) -> datetime:
    """Attempts of a step, one after the other: ("ok" | "retry" | "fail", ms it took)."""
    started = at
    for outcome, took in outcomes:
        rec.clock.now = at
        number = run.start_step(step, {})
        rec.save(run)
        rec.expected.attempts[agent] += 1
        at += timedelta(milliseconds=took)
        rec.clock.now = at
        if outcome == "ok":
            run.succeed_step(step, number, {"ok": True})
            rec.expected.step_status[(step, "SUCCEEDED")] += 1
        else:
            run.fail_attempt(step, number, "no", 5 if outcome == "retry" else None)
            rec.expected.failed_attempts[agent] += 1
            if outcome == "fail":
                rec.expected.step_status[(step, "FAILED")] += 1
        rec.save(run)
    rec.expected.retries[agent] += len(outcomes) - 1
    if outcomes[-1][0] in ("ok", "fail"):
        total = int((at - started).total_seconds() * 1000)
        rec.expected.steps.setdefault((step, agent), []).append(total)
    return at


def pipeline_run(
    rec: Recorder, plan: WorkflowPlan, workflow: UUID, created: datetime, i: int
) -> None:
    """Run ``i`` of the busy workflow (steps a on fetch, then b on summarise)."""
    rec.clock.now = created
    run = requested(plan, workflow_id=workflow, workflow_name="pipeline")
    rec.save(run)
    if i == 38:  # never started
        rec.expected.created.append((workflow, created, "PENDING"))
        rec.expected.step_status.update({("a", "PENDING"): 1, ("b", "PENDING"): 1})
        return
    started = created + timedelta(milliseconds=20)
    rec.at(started, run.start, run)
    a_ms, b_ms = 30 * (i + 1), 70 * (i + 1)
    if i == 39:  # still running: step a in flight
        rec.clock.now = started
        run.start_step("a", {})
        rec.save(run)
        rec.expected.attempts["fetch"] += 1
        rec.expected.created.append((workflow, created, "RUNNING"))
        rec.expected.step_status.update({("a", "RUNNING"): 1, ("b", "PENDING"): 1})
        return
    after_a = attempt_step(rec, run, "a", "fetch", started, [("ok", a_ms)])
    if i == 37:  # cancelled while b runs
        rec.clock.now = after_a
        run.start_step("b", {})
        rec.save(run)
        rec.expected.attempts["summarise"] += 1
        end = after_a + timedelta(milliseconds=b_ms)
        rec.at(end, run.cancel, run)
        rec.expected.step_status[("b", "CANCELLED")] += 1
        finish(rec, workflow, created, started, end, "CANCELLED")
        return
    if i in (9, 19, 29):  # b fails after one retry; run 29 is then retried and succeeds
        end = attempt_step(
            rec, run, "b", "summarise", after_a, [("retry", b_ms // 2), ("fail", b_ms // 2)]
        )
        rec.at(end, lambda: run.fail("no", "b"), run)
        if i != 29:
            finish(rec, workflow, created, started, end, "FAILED")
            return
        rec.expected.step_status[("b", "FAILED")] -= 1
        rec.expected.steps[("b", "summarise")].pop()
        again = end + timedelta(seconds=1)
        rec.at(again, run.retry, run)
        rec.at(again, run.start, run)
        end = attempt_step(rec, run, "b", "summarise", again, [("ok", b_ms)])
        rec.expected.retries["summarise"] += 1  # its third attempt: the step's second retry
        rec.expected.steps[("b", "summarise")][-1] = int((end - after_a).total_seconds() * 1000)
        rec.at(end, run.succeed, run)
        finish(rec, workflow, created, started, end, "SUCCEEDED")
        return
    outcomes = [("retry", 10), ("ok", b_ms)] if i == 5 else [("ok", b_ms)]
    end = attempt_step(rec, run, "b", "summarise", after_a, outcomes)
    rec.at(end, run.succeed, run)
    finish(rec, workflow, created, started, end, "SUCCEEDED")


def finish(
    rec: Recorder, workflow: UUID, created: datetime, started: datetime, end: datetime, status: str
) -> None:
    rec.expected.created.append((workflow, created, status))
    took = int((end - started).total_seconds() * 1000)
    rec.expected.durations.setdefault(workflow, []).append(took)


def quiet_run(
    rec: Recorder, plan: WorkflowPlan, workflow: UUID, created: datetime, ms: int
) -> None:
    rec.clock.now = created
    run = requested(plan, workflow_id=workflow, workflow_name="quiet")
    rec.save(run)
    started = created + timedelta(milliseconds=5)
    rec.at(started, run.start, run)
    end = attempt_step(rec, run, "c", "fetch", started, [("ok", ms)])
    rec.at(end, run.succeed, run)
    finish(rec, workflow, created, started, end, "SUCCEEDED")


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def assert_durations(found: dict[str, Any], values: list[int]) -> None:
    assert found["count"] == len(values)
    for name, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        exact = nearest_rank(values, q)
        assert abs(found[name] - exact) <= RELATIVE_ACCURACY * exact + 0.05, (name, found, exact)


@pytest.fixture
def recorded(
    api: ApiClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> tuple[Expected, dict[str, str], int]:
    for agent in ("fetch", "summarise"):
        assert api.post("/api/v1/agents", json={"name": agent, "url": "http://a"}).is_success
    pipeline = api.post(
        "/api/v1/workflows",
        json={
            "name": "pipeline",
            "start_step": "a",
            "steps": {
                "a": {"agent_name": "fetch", "next_step": "b"},
                "b": {"agent_name": "summarise"},
            },
        },
    ).json()["id"]
    quiet = api.post(
        "/api/v1/workflows",
        json={"name": "quiet", "start_step": "c", "steps": {"c": {"agent_name": "fetch"}}},
    ).json()["id"]
    busy_plan = WorkflowPlan(
        steps=(StepPlan("a", "fetch"), StepPlan("b", "summarise", depends_on=("a",)))
    )
    quiet_plan = WorkflowPlan(steps=(StepPlan("c", "fetch"),))
    expected = Expected()
    with clock_of_the_events(monkeypatch) as clock:
        rec = Recorder(runtime, clock, expected)
        for i in range(40):  # every three minutes from 09:00: two hours
            pipeline_run(rec, busy_plan, UUID(pipeline), BASE + timedelta(minutes=3 * i), i)
        for n, ms in enumerate((50, 60, 70)):  # a day earlier
            quiet_run(rec, quiet_plan, UUID(quiet), BASE - timedelta(days=1, minutes=-n), ms)
        # Outside every range asked below.
        outside = BASE - timedelta(days=1, hours=13)
        quiet_run(rec, quiet_plan, UUID(quiet), outside, 999)
        expected.created.pop()
        expected.durations[UUID(quiet)].pop()
        expected.steps[("c", "fetch")].pop()
        expected.step_status[("c", "SUCCEEDED")] -= 1
        expected.attempts["fetch"] -= 1
    return expected, {"pipeline": pipeline, "quiet": quiet}, rec.position


def get(api: ApiClient, path: str, position: int, **params: Any) -> dict[str, Any]:
    response = api.get(
        f"{ANALYTICS}{path}", params=params, headers={"X-Flowledger-Min-Position": str(position)}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


RANGE = {
    "created_from": (BASE - timedelta(days=1, hours=12)).isoformat(),  # Oct 31, 21:00
    "created_to": (BASE + timedelta(hours=3)).isoformat(),  # Nov 2, 12:00
}
"""From 21:00 two days before to noon: the whole day between is read from daily rows, the
hours at each end from hourly ones."""


def test_runs_per_status_success_rate_durations_and_busiest_workflows(
    api: ApiClient, recorded: tuple[Expected, dict[str, str], int]
) -> None:
    expected, ids, position = recorded
    found = get(api, "/runs", position, **RANGE, bucket="day")
    assert found["created_from"] == "2026-10-31T21:00:00Z"
    assert found["created_to"] == "2026-11-02T12:00:00Z"

    statuses = Counter(status for _, _, status in expected.created)
    totals = found["totals"]
    assert totals["by_status"] == {s: statuses[s] for s in STATUSES}
    assert totals["runs"] == 43
    finished = statuses["SUCCEEDED"] + statuses["FAILED"] + statuses["CANCELLED"]
    assert totals["success_rate"] == round(statuses["SUCCEEDED"] / finished, 4)
    assert_durations(totals["duration"], [d for ds in expected.durations.values() for d in ds])

    days = {point["start"]: point for point in found["series"]}
    assert list(days) == ["2026-10-31T00:00:00Z", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"]
    assert days["2026-10-31T00:00:00Z"]["runs"] == 0  # the run at 20:00 is outside
    assert days["2026-11-01T00:00:00Z"]["by_status"]["SUCCEEDED"] == 3
    assert days["2026-11-02T00:00:00Z"]["runs"] == 40

    busiest = found["busiest_workflows"]
    assert [(w["workflow_name"], w["runs"]) for w in busiest] == [("pipeline", 40), ("quiet", 3)]
    assert busiest[0]["by_status"]["FAILED"] == 2 and busiest[0]["by_status"]["CANCELLED"] == 1
    assert_durations(busiest[0]["duration"], expected.durations[UUID(ids["pipeline"])])
    assert_durations(busiest[1]["duration"], expected.durations[UUID(ids["quiet"])])
    assert busiest[1]["success_rate"] == 1.0

    # The same range hour by hour gives the same totals; the runs are in their hours.
    hourly = get(api, "/runs", position, **RANGE, bucket="hour")
    assert hourly["totals"] == totals
    by_hour = {p["start"]: p["runs"] for p in hourly["series"] if p["runs"]}
    per_hour = Counter(created.strftime("%Y-%m-%dT%H:00:00Z") for _, created, _ in expected.created)
    assert by_hour == dict(per_hour)
    assert len(hourly["series"]) == 39


def test_one_workflows_steps_and_each_agents_retries_and_failures(
    api: ApiClient, recorded: tuple[Expected, dict[str, str], int]
) -> None:
    expected, ids, position = recorded
    found = get(api, f"/workflows/{ids['pipeline']}", position, **RANGE)
    assert found["workflow_name"] == "pipeline"
    assert found["bucket"] == "hour"  # the default for ranges up to two days
    assert found["totals"]["runs"] == 40
    steps = {s["step_id"]: s for s in found["steps"]}
    assert set(steps) == {"a", "b"}
    for step_id, agent in (("a", "fetch"), ("b", "summarise")):
        figures = steps[step_id]
        assert figures["agent_name"] == agent
        assert figures["by_status"] == {
            status: n for (step, status), n in expected.step_status.items() if step == step_id and n
        }
        assert_durations(figures["duration"], expected.steps[(step_id, agent)])
    assert steps["b"]["retries"] == expected.retries["summarise"]
    assert steps["b"]["failed_attempts"] == expected.failed_attempts["summarise"]
    assert (steps["a"]["retries"], steps["a"]["failed_attempts"]) == (0, 0)

    agents = {a["agent_name"]: a for a in get(api, "/agents", position, **RANGE)["agents"]}
    assert expected.attempts["summarise"] > expected.attempts["fetch"]
    assert list(agents) == ["summarise", "fetch"]  # the most called first
    for agent in ("fetch", "summarise"):
        assert agents[agent]["attempts"] == expected.attempts[agent]
        assert agents[agent]["retries"] == expected.retries[agent]
        assert agents[agent]["failed_attempts"] == expected.failed_attempts[agent]
    assert agents["summarise"]["failed_steps"] == 2
    assert agents["summarise"]["retries"] == 5  # runs 5, 9, 19 and 29 (twice: its retry)
    fetch_durations = expected.steps[("a", "fetch")] + expected.steps[("c", "fetch")]
    assert_durations(agents["fetch"]["duration"], fetch_durations)


def test_an_empty_range_and_a_bad_one(api: ApiClient) -> None:
    empty = api.get(f"{ANALYTICS}/runs", params={"created_from": "2001-01-01T00:00:00Z"})
    assert empty.status_code == 422  # more than 1,000 days
    quiet = api.get(
        f"{ANALYTICS}/runs",
        params={"created_from": "2001-01-01T00:00:00Z", "created_to": "2001-01-02T00:00:00Z"},
    ).json()
    assert quiet["totals"]["runs"] == 0 and quiet["totals"]["success_rate"] is None
    assert quiet["totals"]["duration"] == {
        "count": 0,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
    }
    assert len(quiet["series"]) == 24 and quiet["busiest_workflows"] == []
    backwards = api.get(
        f"{ANALYTICS}/runs",
        params={"created_from": "2001-01-02T00:00:00Z", "created_to": "2001-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "created_to"
    missing = api.get(f"{ANALYTICS}/workflows/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**8), min_size=1, max_size=300))
def test_every_percentile_is_within_the_histograms_accuracy(durations: list[int]) -> None:
    from flowledger.projections.run_analytics import duration_bucket  # noqa: PLC0415

    histogram = Counter(duration_bucket(d) for d in durations)
    count, found = percentiles(dict(histogram), (0.5, 0.95, 0.99))
    assert count == len(durations)
    for q, value in zip((0.5, 0.95, 0.99), found, strict=True):
        exact = nearest_rank(durations, q)
        assert value is not None
        if exact <= 1:
            assert value == 1.0
        else:
            assert abs(value - exact) <= RELATIVE_ACCURACY * exact + 0.05
