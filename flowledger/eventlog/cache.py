"""Aggregates kept in memory, checked against the store before every use (ADR 0014).

This is the library's repository cache (``AGGREGATE_CACHE_MAXSIZE`` with fast-forward): a
cached aggregate is brought up to date with the events stored after its version (one indexed
read, usually of nothing) instead of being replayed from its first event. One change to how
the library does it: the cached object is never changed in place. Fast-forwarding applies the
new events to a copy and caches that, so an aggregate handed out for reading only
(``deepcopy_from_cache=False``: no copy, the cheap path of a command's reads) stays exactly as
it was read while another thread moves the cache on.
"""

from __future__ import annotations

import threading
from copy import deepcopy
from typing import Any
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    LRUCache,
    Repository,
    project_aggregate,
)
from eventsourcing.persistence import EventStore


class CachingRepository(Repository[UUID]):
    def __init__(
        self,
        event_store: EventStore[UUID],
        *,
        cache_maxsize: int,
        uncached: tuple[type[Any], ...] = (),
    ) -> None:
        super().__init__(event_store, cache_maxsize=cache_maxsize, fastforward=True)
        self._maxsize = cache_maxsize
        self._uncached = uncached
        """Aggregate classes never kept (many, large, and each read rarely: runs)."""
        self._newer = threading.Lock()

    def forget(self) -> None:
        """Drop every cached aggregate."""
        with self._newer:
            self.cache = LRUCache(maxsize=self._maxsize)

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = project_aggregate,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        """The aggregate as stored now; a private copy unless ``deepcopy_from_cache`` is False
        (then the caller must not change it)."""
        if self.cache is None or version is not None:
            return super().get(aggregate_id, version=version, projector_func=projector_func)
        try:
            cached = self.cache.get(aggregate_id)
        except KeyError:
            aggregate = self._reconstruct_aggregate(aggregate_id, None, projector_func)
            self._keep(aggregate_id, aggregate)
        else:
            new_events = list(self.event_store.get(originator_id=aggregate_id, gt=cached.version))
            if new_events:
                aggregate = projector_func(deepcopy(cached), new_events)
                if aggregate is None:
                    raise AggregateNotFoundError(aggregate_id)
                self._keep(aggregate_id, aggregate)
            else:
                aggregate = cached
        return deepcopy(aggregate) if deepcopy_from_cache else aggregate

    def peek(self, aggregate_id: UUID) -> Any:
        """The cached aggregate as it is, or None (no I/O at all)."""
        assert self.cache is not None
        try:
            return self.cache.get(aggregate_id)
        except KeyError:
            return None

    def cached(self, aggregate_id: UUID) -> Any:
        """The cached aggregate as it is, without asking the store whether it moved on (for
        reads that are checked when the command is recorded); loaded when it is not cached."""
        assert self.cache is not None
        try:
            return self.cache.get(aggregate_id)
        except KeyError:
            return self.get(aggregate_id, deepcopy_from_cache=False)

    def _keep(self, aggregate_id: UUID, aggregate: Any) -> None:
        """Cache ``aggregate`` unless a newer version of it is cached already (two threads
        may bring the same aggregate up to date at once)."""
        assert self.cache is not None
        if isinstance(aggregate, self._uncached):
            return
        with self._newer:
            try:
                current = self.cache.get(aggregate_id)
            except KeyError:
                current = None
            if current is None or current.version < aggregate.version:
                self.cache.put(aggregate_id, aggregate)
