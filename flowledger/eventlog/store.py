"""The one event store: an ``eventsourcing`` application on PostgreSQL.

All aggregates share one events table, so every event has one global position (its
notification id). Every event is stamped with :class:`EventMetadata` (who, which request,
which trace) when it is saved; the library's mapper stores the stamp with the event's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    Repository,
)
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    Notification,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import Environment
from psycopg.abc import Query
from psycopg.sql import SQL, Identifier, Literal

from flowledger.domain.errors import ConcurrentModification, DomainError, NotFound
from flowledger.eventlog.cache import CachingRepository
from flowledger.eventlog.leadership import LOCK_SPACE
from flowledger.eventlog.notify import Notifier
from flowledger.eventlog.settings import EventStoreSettings
from flowledger.eventlog.writer import StaleRead, Submission, Writer
from flowledger.observability import metrics
from flowledger.observability.tracing import traceparent_of
from flowledger.runtime.database import Database
from flowledger.runtime.liveness import IdleCheck

APPLICATION_NAME = "flowledger"
EVENTS_TABLE = f"{APPLICATION_NAME}_events"
INTERNAL_TOPIC_PREFIXES = ("flowledger.domain.names:",)
"""Events of bookkeeping aggregates (name claims) that never leave the system."""

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")
POOL_WAIT_S = 0.5


_decision_reads: ContextVar[dict[UUID, int] | None] = ContextVar("decision_reads", default=None)
"""The versions read by the decision running in this context (see :meth:`EventStore.decide`)."""
_cache_only: ContextVar[bool] = ContextVar("cache_only", default=False)
"""Whether the decision running in this context may read only what the cache holds (see
:meth:`EventStore.deciding_from_cache`)."""


class NotCached(Exception):
    """A decision made on the event loop needed something the cache does not hold: it is
    made again in a worker thread, where reading the store is allowed."""


class EventMetadata(msgspec.Struct, frozen=True):
    """Who caused an event, and in which request and trace."""

    actor: str
    correlation_id: str
    traceparent: str | None = None

    @classmethod
    def system(cls, actor: str = "system", correlation_id: str | None = None) -> EventMetadata:
        return cls(actor=actor, correlation_id=correlation_id or str(uuid.uuid4()))

    def in_current_trace(self) -> EventMetadata:
        """This stamp with the current span's trace context, when there is a valid one."""
        current = traceparent_of()
        if current is None or current == self.traceparent:
            return self
        return msgspec.structs.replace(self, traceparent=current)


def metadata_of(event: object) -> EventMetadata:
    raw = getattr(event, "metadata", None)
    if isinstance(raw, dict):
        return msgspec.convert(raw, EventMetadata)
    return EventMetadata(actor="unknown", correlation_id="")


ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "metadata", "originator_topic"}
)


def event_data(event: object) -> dict[str, Any]:
    """The event's own fields as JSON-ready builtins (ids, times and the stamp left out)."""
    fields = {k: v for k, v in vars(event).items() if k not in ENVELOPE_FIELDS}
    data: dict[str, Any] = msgspec.to_builtins(fields)
    return data


def event_type(event_or_topic: object) -> str:
    """The public name of an event: ``Agent.Registered`` is ``AgentRegistered``."""
    topic = event_or_topic if isinstance(event_or_topic, str) else _topic_of(event_or_topic)
    return topic.rsplit(":", 1)[-1].replace(".", "")


def aggregate_type(event_or_topic: object) -> str:
    """The public name of the aggregate an event belongs to: ``agent``, ``workflow``, ``run``."""
    topic = event_or_topic if isinstance(event_or_topic, str) else _topic_of(event_or_topic)
    qualname = topic.rsplit(":", 1)[-1]
    return snake_case(qualname.split(".", 1)[0])


def is_internal(topic: str) -> bool:
    return topic.startswith(INTERNAL_TOPIC_PREFIXES)


def _topic_of(event: object) -> str:
    cls = type(event)
    return f"{cls.__module__}:{cls.__qualname__}"


def snake_case(name: str) -> str:
    out = []
    for i, char in enumerate(name):
        if char.isupper() and i:
            out.append("_")
        out.append(char.lower())
    return "".join(out)


def append_lock_statements(recorder: PostgresApplicationRecorder) -> list[Query]:
    """What every append runs first, in its transaction: the library's ``lock_timeout``, a
    transaction advisory lock that serialises appends, and ``ROW EXCLUSIVE`` on the event table
    (ADR 0023). Both are held to the commit.

    The library locks the table itself (``LOCK TABLE ... IN EXCLUSIVE MODE``) so that appends
    commit in position order, and the writer checks a batch's reads under it. That lock also
    conflicts with the one VACUUM holds: while autovacuum vacuumed the event table, every
    append waited (a third of a second in a benchmark, until PostgreSQL cancels the vacuum
    after ``deadlock_timeout``; an anti-wraparound vacuum is never cancelled). The advisory
    lock serialises appends the same way, and VACUUM does not take it. ``ROW EXCLUSIVE`` (what
    the INSERT takes anyway, taken here before the reads are checked) conflicts with the
    table lock of a process that still takes it (an older version, during an upgrade), so the
    two kinds of writer stay serialised too, and it does not conflict with VACUUM's."""
    timeout, table_lock = recorder.lock_table_statements  # (what the library builds)
    del table_lock
    schema, table = recorder.datastore.schema, recorder.events_table_name
    advisory = SQL("SELECT pg_advisory_xact_lock({0}, hashtext({1}))").format(
        Literal(LOCK_SPACE), Literal(f"append:{schema}.{table}")
    )
    row_exclusive = SQL("LOCK TABLE {0}.{1} IN ROW EXCLUSIVE MODE").format(
        Identifier(schema), Identifier(table)
    )
    return [timeout, advisory, row_exclusive]


class EventStore(Application[UUID]):
    """The write side's store, and the log every follower reads.

    Appends go through the process's group-commit :class:`~flowledger.eventlog.writer.Writer`
    (ADR 0014); aggregates are read through a cache checked against the store
    (:class:`~flowledger.eventlog.cache.CachingRepository`).
    """

    name = APPLICATION_NAME

    def __init__(
        self,
        database: Database,
        *,
        pool_size: int = 5,
        idle_timeout_s: float = 0.0,
        settings: EventStoreSettings | None = None,
        uncached: tuple[type[Aggregate], ...] = (),
    ) -> None:
        """``pool_size``: the most connections the store opens; it keeps one while idle and
        closes the others, one at a time, each ``idle_timeout_s`` they go unused (0: never).
        ``uncached``: aggregate classes the cache never keeps (see ``CachingRepository``)."""
        self.store_settings = settings or EventStoreSettings()
        self._uncached = uncached
        self.database = database
        self._idle_timeout_s = idle_timeout_s
        super().__init__(env=database.eventsourcing_env(pool_size))
        # How long one attempt waits for a pooled connection. The library retries each call
        # 10 times, so while the database is down a command fails (HTTP 503) after ~7 s
        # rather than after 10 x POSTGRES_CONNECT_TIMEOUT (whole seconds only).
        self.application_recorder.datastore.pool.timeout = POOL_WAIT_S
        recorder = self.application_recorder
        recorder.lock_table_statements = append_lock_statements(recorder)
        self.writer = Writer(
            self.application_recorder,
            batch_size=self.store_settings.write_batch_size,
            window_s=self.store_settings.write_batch_window_s,
        )

    def construct_repository(self) -> Repository[UUID]:
        size = self.store_settings.aggregate_cache_size
        if size <= 0:
            return super().construct_repository()
        return CachingRepository(self.events, cache_maxsize=size, uncached=self._uncached)

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        """The library's factory, its pool named and set up before it opens (the recorders
        open it as they are made). The library's pool hands connections out in turn, so it
        shrinks its own way (``max_idle``), not by the server's idle timeout."""
        factory = super().construct_factory(env)
        if isinstance(factory, PostgresFactory):
            pool = factory.datastore.pool
            assert isinstance(pool.kwargs, dict)
            pool.kwargs.update(self.database.session_parameters())
            # POSTGRES_PRE_PING makes the library give the pool its check, run at every
            # checkout; it now runs only on a connection idle for a while (liveness.py).
            if pool._check is not None:  # (the pool takes its check only when made)
                pool._check = IdleCheck(pool._check)
            if self._idle_timeout_s > 0:
                pool.max_idle = self._idle_timeout_s
        return factory

    @cached_property
    def notifier(self) -> Notifier:
        """The NOTIFY sent with each append, shared by this process's followers of the store."""
        return Notifier(self.database, EVENTS_TABLE)

    def close(self) -> None:
        if "writer" in self.__dict__:
            self.writer.close()
        if "notifier" in self.__dict__:
            self.notifier.close()
        super().close()

    @property
    def application_recorder(self) -> PostgresApplicationRecorder:
        assert isinstance(self.recorder, PostgresApplicationRecorder)
        return self.recorder

    # ------------------------------------------------------------------ reading aggregates

    def get(
        self,
        aggregate_class: type[A],
        aggregate_id: UUID,
        *,
        kind: str | None = None,
        copy: bool = True,
    ) -> A:
        """The aggregate as stored now, or :class:`NotFound` when there is none of that class
        with that id. A copy of the caller's own, to change and record; with ``copy=False``
        the cached aggregate itself, for reading only (cheaper: the caller must not change it).
        """
        return self._get(aggregate_class, aggregate_id, kind, copy=copy)

    def find(self, aggregate_class: type[A], aggregate_id: UUID, *, copy: bool = True) -> A | None:
        """Like :meth:`get`, or None."""
        try:
            return self.get(aggregate_class, aggregate_id, copy=copy)
        except NotFound:
            return None

    def forget_cached(self) -> None:
        """Drop every cached aggregate. The cache trusts that stored events are never removed:
        whoever empties the events table (tests do) must call this."""
        if isinstance(self.repository, CachingRepository):
            self.repository.forget()

    def decide(self, decision: Callable[[], T], *, attempts: int = 3) -> T:
        """Run a command's ``decision`` (load, decide, record) with its reads checked when it
        is recorded rather than when it reads.

        Inside, :meth:`get` with ``copy=False`` answers from the cache without asking the
        store, and notes the version it gave; :meth:`record` hands those versions to the
        writer, which checks them for the whole batch at once. If something read has changed,
        nothing is recorded, the stale aggregates are brought up to date, and the decision
        runs again (at most ``attempts`` times; then once more with every read checked). A
        refusal (a :class:`DomainError`) stands only once what it read is found current."""
        for _ in range(attempts):
            reads: dict[UUID, int] = {}
            token = _decision_reads.set(reads)
            try:
                return decision()
            except StaleRead as stale:
                changed = stale.aggregate_ids
            except DomainError:
                # Refused: but perhaps on an old version of something it read.
                changed = self.writer.changed(reads)
                if not changed:
                    raise
            finally:
                _decision_reads.reset(token)
            for aggregate_id in changed:
                self._refresh(aggregate_id)
        return decision()

    @contextlib.contextmanager
    def deciding_from_cache(self) -> Iterator[dict[UUID, int]]:
        """A decision that must not wait for the database, for the event loop: inside,
        :meth:`get` with ``copy=False`` answers from the cache and notes the version it gave
        (in the dict this yields, to pass to :meth:`record_async` as its ``reads``), and
        anything it would have to load raises :class:`NotCached` instead. Nothing inside may
        ``await``: the context it sets is this task's until the block ends."""
        reads: dict[UUID, int] = {}
        tokens = _decision_reads.set(reads), _cache_only.set(True)
        try:
            yield reads
        finally:
            _cache_only.reset(tokens[1])
            _decision_reads.reset(tokens[0])

    def _refresh(self, aggregate_id: UUID) -> None:
        with contextlib.suppress(AggregateNotFoundError):
            self.repository.get(aggregate_id, deepcopy_from_cache=False)

    def _get(
        self, aggregate_class: type[A], aggregate_id: UUID, kind: str | None, *, copy: bool
    ) -> A:
        label = kind or aggregate_class.__name__.lower()
        reads = None if copy else _decision_reads.get()
        try:
            if _cache_only.get():
                aggregate: Any = self._from_cache_only(aggregate_id, copy=copy)
            elif reads is not None and isinstance(self.repository, CachingRepository):
                aggregate = self.repository.cached(aggregate_id)
            else:
                aggregate = self.repository.get(aggregate_id, deepcopy_from_cache=copy)
        except AggregateNotFoundError:
            if reads is not None:
                reads[aggregate_id] = 0
            raise NotFound(f"{label} {aggregate_id} not found") from None
        if reads is not None:
            reads[aggregate_id] = aggregate.version
        if not isinstance(aggregate, aggregate_class):
            raise NotFound(f"{label} {aggregate_id} not found")
        return aggregate

    def _from_cache_only(self, aggregate_id: UUID, *, copy: bool) -> Any:
        found = None if copy else self._peek(aggregate_id)
        if found is None:
            raise NotCached(aggregate_id)
        return found

    # ------------------------------------------------------------------ recording

    def record(self, *aggregates: Aggregate | None, metadata: EventMetadata) -> int | None:
        """Append the aggregates' pending events atomically; the position of the last one.

        ``None`` when there was nothing to append. A conflicting concurrent append raises
        :class:`ConcurrentModification` and appends nothing. The events carry ``metadata``
        with the current span's trace context, so whoever handles them continues the trace.
        The events are recorded by the process's writer, with other commands' in the same
        transaction; this returns once that transaction committed.
        """
        pending = self._pending(aggregates, metadata)
        if pending is None:
            return None
        return self._recorded(pending, self.writer.submit(pending.stored, _decision_reads.get()))

    async def record_async(
        self,
        *aggregates: Aggregate | None,
        metadata: EventMetadata,
        reads: Mapping[UUID, int] | None = None,
        again_if_stale: bool = True,
    ) -> int | None:
        """:meth:`record` for the event loop: waits for the commit without a thread.

        ``reads``: versions of other aggregates read from the cache (:meth:`cached`,
        :meth:`deciding_from_cache`) that the caller relies on; they are checked under the
        append lock, and any that moved on are brought up to date (then :meth:`cached` has them
        as stored) before the events are recorded with the new versions; or, with
        ``again_if_stale=False`` (a decision that must be made again on what moved on),
        :class:`StaleRead` is raised and nothing is recorded. Once the events are handed to
        the writer they are recorded (or refused) whatever happens to the caller: a cancelled
        caller still waits for the outcome before it unwinds, so nothing is appended on its
        behalf after it returned."""
        pending = self._pending(aggregates, metadata)
        if pending is None:
            return None
        checking = dict(reads) if reads else None
        while True:
            answer = self.writer.submit(pending.stored, checking)
            waiting = asyncio.wrap_future(answer)
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:
                await asyncio.wait([waiting])
                raise
            except Exception:  # noqa: S110  (the answer holds it: _recorded raises it)
                pass
            try:
                return self._recorded(pending, answer)
            except StaleRead as stale:
                for aggregate_id in stale.aggregate_ids:
                    await asyncio.to_thread(self._refresh, aggregate_id)
                if not again_if_stale:
                    raise
                checking = {i: self._cached_version(i) for i in checking or {}}

    def cached(self, aggregate_class: type[A], aggregate_id: UUID) -> A | None:
        """The aggregate as this process last read or refreshed it, without asking the store
        (it may be behind: pass its version as a read to :meth:`record_async`); None when it
        is not cached. For reading only."""
        found = self._peek(aggregate_id)
        return found if isinstance(found, aggregate_class) else None

    def _cached_version(self, aggregate_id: UUID) -> int:
        found = self._peek(aggregate_id)
        return 0 if found is None else int(found.version)

    def _peek(self, aggregate_id: UUID) -> Any:
        """The cached aggregate, or None (no I/O at all)."""
        if not isinstance(self.repository, CachingRepository):
            return None
        return self.repository.peek(aggregate_id)

    def record_many(
        self, commands: Sequence[tuple[Sequence[Aggregate | None], EventMetadata]]
    ) -> list[int | DomainError | None]:
        """Record several commands at once, each on its own merits, in this order: for each,
        the position of its last event (None: nothing to append) or the conflict that refused
        it. They share the writer's transactions with each other and with other callers.

        Any other failure (the database unreachable) is raised once every command is settled
        (those it hit recorded nothing)."""
        pendings = [self._pending(aggregates, metadata) for aggregates, metadata in commands]
        answers = self.writer.submit_many([Submission(p.stored) for p in pendings if p])
        waiting = iter(answers)
        outcomes: list[int | DomainError | None] = []
        failure: Exception | None = None
        for pending in pendings:
            if pending is None:
                outcomes.append(None)
                continue
            try:
                outcomes.append(self._recorded(pending, next(waiting)))
            except ConcurrentModification as conflict:
                outcomes.append(conflict)
            except Exception as error:
                failure = failure or error
                outcomes.append(None)
        if failure is not None:
            raise failure
        return outcomes

    def _pending(
        self, aggregates: Sequence[Aggregate | None], metadata: EventMetadata
    ) -> _Pending | None:
        """Collect the aggregates' new events, stamp them, and encode them (in the caller's
        thread, so the writer only talks to the database)."""
        # Aggregate.collect_events, as ProcessingEvent.collect_events does it, without its
        # runtime protocol checks (a sizeable share of a small command's time).
        events: list[DomainEventProtocol[UUID]] = [
            event
            for aggregate in aggregates
            if aggregate is not None
            for event in aggregate.collect_events()
        ]
        if not events:
            return None
        stamp = msgspec.to_builtins(metadata.in_current_trace())
        for domain_event in events:
            object.__setattr__(domain_event, "metadata", stamp)
        stored = [self.mapper.to_stored_event(e) for e in events]
        return _Pending(events, stored)

    def _recorded(self, pending: _Pending, answer: Future[list[int]]) -> int:
        try:
            positions = answer.result()
        except IntegrityError as error:
            raise ConcurrentModification(
                "the entity was changed by another request; read it again and retry"
            ) from error
        for domain_event in pending.events:
            metrics.EVENTS_APPENDED.labels(event_type=event_type(domain_event)).inc()
        return max(positions)

    def read(
        self, after: int | None, limit: int, until: int | None = None
    ) -> Sequence[Notification]:
        """Up to ``limit`` stored events after position ``after`` (from the start when None)."""
        return self.recorder.select_notifications(
            start=after, limit=limit, stop=until, inclusive_of_start=after is None
        )

    def decode(self, notification: Notification) -> DomainEventProtocol[Any]:
        return self.mapper.to_domain_event(notification)

    def head(self) -> int:
        """The position of the newest event (0 when the store is empty)."""
        return self.recorder.max_notification_id() or 0


@dataclass(frozen=True)
class _Pending:
    """One command's new events, and the same encoded for the events table."""

    events: list[DomainEventProtocol[UUID]]
    stored: list[StoredEvent]
