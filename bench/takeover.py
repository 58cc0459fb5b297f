"""Relay takeover: two ``flowledger worker relay`` processes, the leader killed with SIGKILL
while runs are being requested; how many seconds until the standby publishes again, and how
many events a consumer never received (every public run event of the log, compared by event
id), beside how long a relay takes to publish its first event from a cold start in the same
run.

How leadership works (``flowledger/eventlog/leadership.py``, ADR 0015): the relay that holds a
session advisory lock publishes and shows itself in ``relay_state.leader`` (``host:pid``); the
other asks every 0.5 s. The kill closes the leader's session, PostgreSQL releases the lock, and
the standby leads, shows itself, and publishes from the saved position (at least once: what the
dead leader published without saving its position is published again, counted as duplicates).
"Publishes again" = the relay's saved position moves past where it was at the kill, with the
standby shown as the leader.

Target (issue 15): < 10 s, 0 events lost. Sizes: 200 runs/s for 15 s, the leader killed after
5 s; with start-up and draining the module takes under a minute (``--quick``: 8 s, killed
after 3 s).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import Engine, select, text

from bench.catalogue import echo_chain
from bench.results import Figure
from bench.system import Process, System, World
from flowledger.commands.runs import RequestRun, request_run
from flowledger.eventlog.envelope import envelopes
from flowledger.eventlog.store import APPLICATION_NAME, EventMetadata, EventStore
from flowledger.kafka.config import KafkaSettings
from flowledger.kafka.consumer import FAST_GROUP_SETTINGS, EnvelopeConsumer
from flowledger.projections.tables import relay_state, relay_tracking
from flowledger.runtime.process import Runtime

PREFIX_ENV = "FLOWLEDGER_KAFKA_TOPIC_PREFIX"
RATE = 200.0
TARGET_S = 10.0
WAIT_S = 60.0
"""The longest any step waits (a relay to lead, the standby to take over, the consumer to
receive everything)."""
_LEAD_SESSION = "flowledger worker relay pid=% lead relay"
"""How a relay's lead lock session is named (its process's name, ADR 0013, then its use)."""


@dataclass
class Received:
    """What the consumer got: every event id (with repeats) and when it arrived."""

    ids: list[UUID] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)

    def run(self, config: KafkaSettings) -> None:
        try:
            asyncio.run(self._consume(config))
        except BaseException as error:  # reported by the caller
            self.errors.append(error)
            self.ready.set()

    async def _consume(self, config: KafkaSettings) -> None:
        consumer = EnvelopeConsumer(
            config,
            group_id=f"bench-takeover-{secrets.token_hex(4)}",
            aggregate_types=["run"],
            from_beginning=True,
            dedupe=False,
            group_settings=FAST_GROUP_SETTINGS,
        )
        await consumer.start()
        try:
            while not self.stop.is_set():
                if consumer.assignment():
                    self.ready.set()
                self.ids.extend(e.event_id for e in await consumer.getmany(timeout_ms=100))
        finally:
            await consumer.stop()


def _relay_position(engine: Engine) -> int:
    with engine.connect() as conn:
        value = conn.execute(
            select(relay_tracking.c.notification_id).where(
                relay_tracking.c.application_name == APPLICATION_NAME
            )
        ).scalar_one_or_none()
    return int(value or 0)


def _leader(engine: Engine) -> str | None:
    with engine.connect() as conn:
        value = conn.execute(select(relay_state.c.leader)).scalar_one_or_none()
    return None if value is None else str(value)


def _identity(process: Process) -> str:
    """How the relay in ``process`` shows itself as leader (``Leadership.me``)."""
    return f"{socket.gethostname()}:{process.popen.pid}"


def _until(
    what: str, done: Callable[[], bool], processes: list[Process], *, must: bool = True
) -> float:
    """Poll ``done()`` every 10 ms until true (``processes`` must stay up; their memory is
    sampled); the seconds it took. After ``WAIT_S`` it raises, or returns when not ``must``."""
    started = time.perf_counter()
    while not done():
        for process in processes:
            process.sample()
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}")
        if time.perf_counter() - started > WAIT_S:
            if not must:
                break
            raise RuntimeError(f"{what}: not within {WAIT_S:.0f} s")
        time.sleep(0.01)
    return time.perf_counter() - started


def _lead_sessions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :name"),
                {"name": _LEAD_SESSION},
            ).scalar_one()
        )


def _run_events(store: EventStore) -> set[UUID]:
    """The id of every public run event in the log: what the consumer must have received."""
    ids: set[UUID] = set()
    position: int | None = None
    while batch := store.read(position, 1000):
        ids.update(e.event_id for e in envelopes(store, batch) if e.aggregate_type == "run")
        position = batch[-1].id
    return ids


def _relay(system: System, role: str, extra: dict[str, str]) -> Process:
    return system.spawn(role, [sys.executable, "-m", "flowledger", "worker", "relay"], extra)


def _append(
    runtime: Runtime, workflow_id: UUID, rate: float, duration_s: float, stop: threading.Event
) -> None:
    meta = EventMetadata.system("bench")
    command = RequestRun(workflow_id=workflow_id, input_data={"text": "hello"})
    started = time.perf_counter()
    for n in range(int(rate * duration_s)):
        if stop.is_set():
            return
        pause = started + n / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        request_run(runtime.store, command, meta)


def measure(world: World, quick: bool) -> tuple[list[Figure], dict[str, float]]:
    duration, kill_after = (8.0, 3.0) if quick else (15.0, 5.0)
    extra = {PREFIX_ENV: f"bench-takeover-{secrets.token_hex(4)}"}
    received = Received()
    with world.system("takeover") as system, system.runtime() as runtime:
        engine = runtime.engine
        workflow_id = echo_chain(runtime.store, "bench-takeover", 1)
        meta = EventMetadata.system("bench")
        command = RequestRun(workflow_id=workflow_id, input_data={"text": "hello"})
        warm = request_run(runtime.store, command, meta).position or runtime.store.head()
        leader = _relay(system, "relay-leader", extra)
        cold_start_s = _until(
            "the first relay publishes", lambda: _relay_position(engine) >= warm, [leader]
        )
        if _leader(engine) != _identity(leader):
            raise RuntimeError(f"the first relay is not shown as leader: {_leader(engine)}")
        standby = _relay(system, "relay-standby", extra)
        _until("the standby stands by", lambda: _lead_sessions(engine) >= 2, [leader, standby])
        config = KafkaSettings.from_env(system.env(extra), world.bootstrap_servers)
        consumer = threading.Thread(target=received.run, args=(config,), daemon=True)
        consumer.start()
        stop_appending = threading.Event()
        appender = threading.Thread(
            target=_append, args=(runtime, workflow_id, RATE, duration, stop_appending)
        )
        try:
            if not received.ready.wait(WAIT_S) or received.errors:
                raise RuntimeError(f"the consumer did not join its group: {received.errors}")
            appender.start()
            killing_at = time.perf_counter() + kill_after
            _until("the kill is due", lambda: time.perf_counter() > killing_at, [leader, standby])
            at_kill = _relay_position(engine)
            head_at_kill = runtime.store.head()
            killed = time.perf_counter()
            leader.popen.kill()  # SIGKILL: no clean stop, the session just ends
            leader.popen.wait()
            takeover_s = _until(
                "the standby publishes",
                lambda: _leader(engine) == _identity(standby) and _relay_position(engine) > at_kill,
                [standby],
            )
            publishing_again = time.perf_counter() - killed
            appender.join()
            head = runtime.store.head()
            _until("the standby reaches the head", lambda: _relay_position(engine) >= head, [])
            expected = _run_events(runtime.store)
            _until(
                "the consumer receives every run event",
                lambda: bool(received.errors) or expected <= set(received.ids),
                [standby],
                must=False,  # what never arrives is counted as lost
            )
            if received.errors:
                raise RuntimeError(f"the consumer failed: {received.errors}")
        finally:
            stop_appending.set()
            if appender.is_alive():
                appender.join()
            received.stop.set()
            consumer.join(timeout=15)
        leader_peak = system.stop(leader) or 0.0
        standby_peak = system.stop(standby) or 0.0
    got = set(received.ids)
    lost = len(expected - got)
    figure = Figure(
        name="relay takeover after kill -9 of the leading relay",
        value=publishing_again,
        unit="s",
        how=(
            f"two `flowledger worker relay` processes; runs requested at {RATE:.0f}/s for "
            f"{duration:.0f} s, the leader killed with SIGKILL after {kill_after:.0f} s; value = "
            "kill → the standby shown as leader with its saved position past the dead leader's; "
            "lost = run events in the log a consumer (every topic of runs, from the beginning, "
            "no deduplication) never received once the standby reached the head"
        ),
        baseline=cold_start_s,
        baseline_unit="s (a relay's cold start to its first publish)",
        target=f"< {TARGET_S:.0f} s, 0 events lost",
        met=publishing_again < TARGET_S and lost == 0,
        details={
            "events_lost": lost,
            "run_events_in_log": len(expected),
            "received": len(received.ids),
            "duplicates": len(received.ids) - len(got),
            "position_at_kill": at_kill,
            "head_at_kill": head_at_kill,
            "head": head,
            "takeover_poll_s": round(takeover_s, 3),
            "leader_peak_rss_mb": round(leader_peak, 1),
            "standby_peak_rss_mb": round(standby_peak, 1),
        },
        notes=(
            f"{lost} of {len(expected):,} run events lost, "
            f"{len(received.ids) - len(got):,} received twice (at least once: what the dead "
            "leader published without saving its position is published again)"
        ),
    )
    return [figure], {"relay (leader)": leader_peak, "relay (standby)": standby_peak}
