"""The Kafka relay: follows the event log and publishes every public event's envelope to its
aggregate type's topic, keyed by aggregate id (so each aggregate's events stay in order).

At least once, never lost: a batch's position is saved only after the broker acknowledged every
record of it, so a crash in between publishes the batch again (same event ids). The worker's
relay keeps an acknowledged position in memory for up to ``SAVE_EVERY_S`` and saves it with a
later batch or when idle: saving costs more CPU than reading and encoding a live batch, and a
crash then publishes those events again, which consumers drop as repeats. A batch is
encoded in chunks, each sent while the next is being encoded (each event decoded once and its
envelope encoded once, :func:`~flowledger.eventlog.envelope.wire_event`). While the broker is
down, publishing raises :class:`BrokerUnavailable` and the follower retries with backoff;
commands are not affected (the event store is the queue). A broker that refuses what the relay
needs (:class:`BrokerRefused`: no idempotent producer) is reported once, in the log and in the
relay's status (``/health/ready``), naming the setting to change, and tried again every minute.

One relay publishes at a time: :func:`run_relay` waits for the lead
(:class:`~flowledger.eventlog.leadership.Leadership`) before it follows the log, and stops
following as soon as it loses it; a standby takes over within a second of the leader's death.

A broker can also come back *empty* (the embedded dev broker keeps everything in memory), and
then the saved position is a lie. The relay remembers which cluster (by id) and topics its
position refers to, and checks both against ``relay_state`` on every new connection and every
``check_interval`` while idle; before it saves a position, it checks that the cluster is still
the one the unsaved batches went to. A new cluster id, or a topic it published to gone, means
the history was lost: it forgets its position and publishes everything again from the start.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, cast

from eventsourcing.persistence import IntegrityError, Notification, Tracking
from eventsourcing.postgres import PostgresFactory, PostgresTrackingRecorder
from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from flowledger.eventlog.decoding import EventDecoder
from flowledger.eventlog.envelope import WireEvent, wire_event
from flowledger.eventlog.follower import (
    RETRY_BACKOFF,
    TRANSIENT_ERRORS,
    Follower,
    PositionMoved,
    StopFollowing,
    run_followers,
)
from flowledger.eventlog.leadership import Leadership
from flowledger.eventlog.store import APPLICATION_NAME, EventStore, is_internal
from flowledger.kafka.config import KafkaSettings
from flowledger.kafka.publisher import (
    BrokerRefused,
    BrokerUnavailable,
    BrokerView,
    KafkaPublisher,
)
from flowledger.observability import metrics
from flowledger.projections.tables import relay_state, relay_tracking
from flowledger.runtime.settings import Settings

log = logging.getLogger(__name__)

NAME: Final = "relay"
STATE_REFRESH_S: Final = 1.0
"""How stale ``relay_state.last_published_at`` may be while the relay publishes."""
CLOSE_CHECK_S: Final = 2.0
"""How long a relay that stops waits for the broker to say which cluster it is, before it
saves the position it kept in memory (otherwise it is not saved)."""
SAVE_EVERY_S: Final = 0.5
"""How long the worker's relay may keep an acknowledged position in memory (see
:class:`Relay`); a crash publishes at most this much again."""
CHUNK: Final = 1000
"""Events encoded before they are handed to the producer (the next chunk is encoded while
this one is sent)."""


class Relay:
    """The relay's batch handler (see :class:`~flowledger.eventlog.follower.BatchHandler`)."""

    name = NAME

    def __init__(
        self,
        store: EventStore,
        engine: Engine,
        config: KafkaSettings,
        publisher: KafkaPublisher | None = None,
        leadership: Leadership | None = None,
        save_every_s: float = 0.0,
    ) -> None:
        self.store = store
        self.engine = engine
        self.config = config
        self.publisher = publisher or KafkaPublisher(config)
        self.leadership = leadership
        """When given, the relay publishes only while it leads."""
        self.decoder = EventDecoder(store.mapper)
        self._refusal: str | None = None
        factory = cast(PostgresFactory, store.factory)
        self.recorder = PostgresTrackingRecorder(
            factory.datastore, tracking_table_name=relay_tracking.name
        )
        self._verified_connection = -1
        self._last_check = 0.0
        self._state: tuple[str, frozenset[str], float] | None = None
        """What this relay last wrote to ``relay_state`` after a batch: cluster, topics, when."""
        self.save_every_s = save_every_s
        """How long an acknowledged position may stay unsaved (0: saved with every batch)."""
        self._unsaved: _Unsaved | None = None
        self._saved_at = time.monotonic()

    # ---------------------------------------------------------------- BatchHandler
    def position(self) -> int | None:
        self._unsaved = None  # the follower reads on from the saved position
        position = self.recorder.max_tracking_id(APPLICATION_NAME)
        return None if position is None else int(position)

    def handle(self, batch: Sequence[Notification]) -> None:
        self._must_lead()
        sending: list[concurrent.futures.Future[Counter[str]]] = []
        view: BrokerView | None = None
        try:
            for start in range(0, len(batch), CHUNK):
                outgoing = self._wire(batch[start : start + CHUNK])
                if not outgoing:
                    continue
                if view is None:
                    view = self._verify(force=False)
                sending.append(self.publisher.submit(outgoing))
            if view is None:  # only internal events: nothing to publish, no broker needed
                self._published(batch[0].id, batch[-1].id, None, set())
                return
            published = _acknowledged(sending)
        except BrokerRefused as refusal:
            self._refused(refusal)
            raise
        except BrokerUnavailable as error:
            self._note_error(f"broker unavailable: {error}")
            raise
        self._refusal = None
        self._must_lead()
        self._published(batch[0].id, batch[-1].id, view.cluster_id, set(published))

    def _published(self, first: int, last: int, cluster_id: str | None, topics: set[str]) -> None:
        """Events ``first`` to ``last`` are on the broker: save that now, or keep it with what
        is unsaved until ``save_every_s`` has passed."""
        unsaved = self._unsaved
        if unsaved is not None:
            first = unsaved.first
            topics = topics | unsaved.topics
            cluster_id = unsaved.cluster_id or cluster_id  # the cluster of the first batch
        self._unsaved = _Unsaved(first, last, cluster_id, topics)
        if time.monotonic() - self._saved_at >= self.save_every_s:
            self.flush()

    def flush(self, check_timeout_s: float | None = None) -> None:
        """Save the acknowledged position kept in memory, if any: first, is the broker still
        the one it was published to? One that restarted empty meanwhile (aiokafka connects
        again by itself) lost those events, and maybe some of the batches before. Asked once per
        save, not once per batch: the position saved is what must not be a lie. What is unsaved
        is kept until it is saved, so a check or a save that fails is made again, for the same
        batches, with the next one (``check_timeout_s``: how long the broker may take to say)."""
        unsaved = self._unsaved
        if unsaved is not None:
            if unsaved.cluster_id is not None and (
                self.publisher.cluster_id(check_timeout_s) != unsaved.cluster_id
            ):
                self._start_over(self.publisher.describe(), "the broker restarted while publishing")
            self._save(unsaved.first, unsaved.last, unsaved.cluster_id, set(unsaved.topics))
            self._unsaved = None
        self._saved_at = time.monotonic()

    def idle(self) -> None:
        """Save a position kept in memory once it is due; every ``check_interval``: is the
        history we published still on the broker?"""
        self._must_lead()
        if self._unsaved is not None and time.monotonic() - self._saved_at >= self.save_every_s:
            self.flush()
        if time.monotonic() - self._last_check < self.config.check_interval_s:
            return
        try:
            self._verify(force=True)
        except BrokerUnavailable as error:
            self._last_check = time.monotonic()
            self._note_error(f"broker unavailable: {error}")

    def _wire(self, notifications: Sequence[Notification]) -> list[WireEvent]:
        return [
            wire_event(self.decoder.decode(n), n.id)
            for n in notifications
            if not is_internal(n.topic)
        ]

    def _must_lead(self) -> None:
        if self.leadership is not None and not self.leadership.held():
            raise StopFollowing("this relay lost its lead; another one publishes")

    def _refused(self, refusal: BrokerRefused) -> None:
        """Say it once (log and status), not at every attempt."""
        message = str(refusal)
        if message != self._refusal:
            log.error("relay: %s", message)
            self._note_error(message)
            self._refusal = message
        refusal.reported = True

    def close(self) -> None:
        """Save what is acknowledged but unsaved (while this relay may), then disconnect."""
        if self._unsaved is not None and (self.leadership is None or self.leadership.held()):
            try:
                # A broker that does not answer at once is not waited for: what is unsaved is
                # published again by the next relay, which costs less than a stop held up.
                self.flush(check_timeout_s=CLOSE_CHECK_S)
            except PositionMoved:
                pass  # another relay went on from there
            except TRANSIENT_ERRORS as error:
                log.info("relay: position not saved at close (%s); it is published again", error)
        self.publisher.close()

    def lead(self) -> None:
        """Show this relay as the one publishing (``relay_state.leader``)."""
        if self.leadership is None:
            return
        with self.engine.begin() as conn:
            statement = pg_insert(relay_state).values(
                name=NAME, topics=[], leader=self.leadership.me, updated_at=func.now()
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"leader": statement.excluded.leader, "updated_at": func.now()},
                )
            )
        metrics.RELAY_LEADER.set(1)

    def step_down(self) -> None:
        """No longer shown as the one publishing (a clean stop)."""
        metrics.RELAY_LEADER.set(0)
        if self.leadership is None:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(relay_state)
                    .where(relay_state.c.name == NAME, relay_state.c.leader == self.leadership.me)
                    .values(leader=None, updated_at=func.now())
                )
        except TRANSIENT_ERRORS:
            pass

    # ---------------------------------------------------------------- checks
    def _verify(self, *, force: bool) -> BrokerView:
        view = self.publisher.connect()
        if not force and self.publisher.connections == self._verified_connection:
            return view
        if force:
            view = self.publisher.describe()
        with self.engine.connect() as conn:
            state = conn.execute(select(relay_state).where(relay_state.c.name == NAME)).first()
        self._verified_connection = self.publisher.connections
        self._last_check = time.monotonic()
        if state is None or state.cluster_id is None:
            return view
        if state.cluster_id != view.cluster_id:
            self._start_over(
                view, f"the broker's cluster id changed ({state.cluster_id} -> {view.cluster_id})"
            )
        missing = sorted(set(state.topics) - view.topics)
        if missing:
            self._start_over(view, f"topics {', '.join(missing)} are gone from the broker")
        return view

    def _start_over(self, view: BrokerView, reason: str) -> None:
        """Forget the position: everything is published again (consumers drop duplicates)."""
        log.warning("relay: %s; publishing every event again from the start", reason)
        self._state = None
        self._unsaved = None
        with self.engine.begin() as conn:
            conn.execute(
                delete(relay_tracking).where(relay_tracking.c.application_name == APPLICATION_NAME)
            )
            self._upsert_state(
                conn,
                cluster_id=view.cluster_id,
                topics=[],
                last_error=f"{reason}; republishing from the start",
            )
        self.publisher.disconnect()  # a new producer for the new broker
        raise PositionMoved(NAME)

    # ---------------------------------------------------------------- state
    def _save(self, first: int, last: int, cluster_id: str | None, topics: set[str]) -> None:
        """Save ``last`` as the position, with the cluster and topics published to (None:
        nothing was published, the state stays as it is)."""
        with self.engine.begin() as conn:
            current = conn.execute(
                select(relay_tracking.c.notification_id)
                .where(relay_tracking.c.application_name == APPLICATION_NAME)
                .with_for_update()
            ).scalar_one_or_none()
            if current is not None and current >= first:
                raise PositionMoved(NAME)
            if cluster_id is None or self._state_current(cluster_id, topics):
                self._save_position(conn, last)
                return
            known = conn.execute(
                select(relay_state.c.topics, relay_state.c.cluster_id).where(
                    relay_state.c.name == NAME
                )
            ).first()
            previous = set(known.topics) if known and known.cluster_id == cluster_id else set()
            self._save_position(conn, last)
            saved = previous | topics
            self._upsert_state(
                conn,
                cluster_id=cluster_id,
                topics=sorted(saved),
                last_error=None,
                last_published_at=func.now(),
            )
        self._state = (cluster_id, frozenset(saved), time.monotonic())

    def _state_current(self, cluster_id: str, topics: set[str]) -> bool:
        """Whether ``relay_state`` already says what a batch just published to ``cluster_id``
        and ``topics`` would write, and was written less than :data:`STATE_REFRESH_S` ago: then
        the batch saves its position alone (one statement less per batch, and no read)."""
        if self._state is None:
            return False
        saved_cluster, saved_topics, saved_at = self._state
        return (
            saved_cluster == cluster_id
            and topics <= saved_topics
            and time.monotonic() - saved_at < STATE_REFRESH_S
        )

    def _save_position(self, conn: Connection, position: int) -> None:
        driver_connection = conn.connection.driver_connection
        assert driver_connection is not None
        try:
            with driver_connection.cursor() as cursor:
                self.recorder._insert_tracking(
                    cast(Any, cursor), Tracking(APPLICATION_NAME, position)
                )
        except IntegrityError as error:
            raise PositionMoved(NAME) from error

    @staticmethod
    def _upsert_state(
        conn: Connection,
        *,
        cluster_id: str,
        topics: list[str],
        last_error: str | None,
        last_published_at: Any = None,
    ) -> None:
        values: dict[str, Any] = {
            "cluster_id": cluster_id,
            "topics": topics,
            "last_error": last_error,
            "updated_at": func.now(),
        }
        if last_published_at is not None:
            values["last_published_at"] = last_published_at
        statement = pg_insert(relay_state).values(name=NAME, **values)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["name"], set_={k: statement.excluded[k] for k in values}
            )
        )

    def _note_error(self, message: str) -> None:
        self._state = None  # the next batch clears the error
        try:
            with self.engine.begin() as conn:
                statement = pg_insert(relay_state).values(
                    name=NAME, topics=[], last_error=message[:1000], updated_at=func.now()
                )
                conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=["name"],
                        set_={
                            "last_error": statement.excluded.last_error,
                            "updated_at": func.now(),
                        },
                    )
                )
        except TRANSIENT_ERRORS:
            pass


@dataclass(frozen=True)
class _Unsaved:
    """Acknowledged events whose position is not saved yet, and where they went."""

    first: int
    last: int
    cluster_id: str | None
    topics: set[str]


def _acknowledged(
    sending: Sequence[concurrent.futures.Future[Counter[str]]],
) -> Counter[str]:
    """Wait for every chunk's acknowledgements (all of them, even after one failed, so that
    nothing of this batch is still in flight when it is tried again); the records per topic."""
    concurrent.futures.wait(sending)
    published: Counter[str] = Counter()
    for future in sending:
        published.update(future.result())  # raises the first chunk's failure
    return published


def run_relay(
    store: EventStore,
    engine: Engine,
    config: KafkaSettings,
    settings: Settings,
    stop: threading.Event,
    leadership: Leadership,
) -> None:
    """Stand by until this relay leads, then relay until ``stop`` (or until the lead is lost:
    then stand by again). Raises :class:`FollowerFailed` when the relay must stop."""
    while leadership.wait(stop):
        relay = Relay(store, engine, config, leadership=leadership, save_every_s=SAVE_EVERY_S)
        try:
            relay.lead()
            run_followers([relay_follower(store, relay, settings)], stop)
        finally:
            relay.close()
            if stop.is_set():
                relay.step_down()
            leadership.release()


def relay_follower(store: EventStore, relay: Relay, settings: Settings) -> Follower:
    return Follower(
        store,
        relay,
        batch_size=settings.follower_batch_size,
        idle_wait_s=settings.follower_idle_wait_s,
        backoff=replace(RETRY_BACKOFF, maximum=5.0),
    )
