"""Followers decode stored events with msgspec (:mod:`flowledger.eventlog.decoding`): whatever
an event holds, the result is exactly what the library's own mapper gives, upcasting included."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import StoredEvent
from hypothesis import given
from hypothesis import strategies as st

from flowledger.eventlog.decoding import EventDecoder

pytestmark = pytest.mark.unit


class Sample(Aggregate):
    """Events of any shape, to decode."""

    @event("Noted")
    def note(self, data: Any, when: datetime, ref: UUID) -> None:
        pass

    class Versioned(Aggregate.Event):
        """An event whose class moved on: stored at version 1, read at version 2."""

        class_version = 2
        size: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["size"] = state.pop("length") * 10


APP: Application[UUID] = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
MAPPER = APP.mapper
DECODER = EventDecoder(MAPPER)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.uuids(),
    st.datetimes(timezones=st.just(UTC)),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
)
keys = st.sampled_from(["a", "b", "_type_", "_data_", "uuid_hex", "x y", "ünï"])
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
).filter(lambda v: not _looks_transcoded(v))


def _looks_transcoded(value: Any) -> bool:
    """User data that is itself a two-key ``{"_type_", "_data_"}`` object is not decodable by
    the library either (it reads it as a transcoded value of an unknown type)."""
    if isinstance(value, dict):
        if set(value) == {"_type_", "_data_"}:
            return True
        return any(_looks_transcoded(v) for v in value.values())
    if isinstance(value, list):
        return any(_looks_transcoded(v) for v in value)
    return False


def _stored(data: Any, when: datetime, ref: UUID) -> StoredEvent:
    sample = Sample()
    sample.note(data=data, when=when, ref=ref)
    return MAPPER.to_stored_event(sample.collect_events()[-1])


@given(data=values, when=st.datetimes(timezones=st.just(UTC)), ref=st.uuids())
def test_decoding_gives_exactly_what_the_librarys_mapper_gives(
    data: Any, when: datetime, ref: UUID
) -> None:
    stored = _stored(data, when, ref)
    ours, theirs = DECODER.decode(stored), MAPPER.to_domain_event(stored)
    assert type(ours) is type(theirs)
    assert ours.__dict__ == theirs.__dict__
    assert isinstance(ours.__dict__["ref"], UUID)


def test_nested_transcoded_values_and_a_key_named_like_a_transcoding_are_restored() -> None:
    nested = {"_type_": "note", "ids": [uuid4(), {"at": datetime.now(UTC), "n": Decimal("1.5")}]}
    stored = _stored(nested, datetime.now(UTC), uuid4())
    assert DECODER.decode(stored).__dict__ == MAPPER.to_domain_event(stored).__dict__


def test_values_only_pythons_json_reads_are_decoded_too() -> None:
    stored = _stored({"x": math.inf, "y": -math.inf, "z": math.nan}, datetime.now(UTC), uuid4())
    data = DECODER.decode(stored).__dict__["data"]
    assert data["x"] == math.inf and data["y"] == -math.inf and math.isnan(data["z"])


def test_an_event_stored_at_an_older_class_version_is_upcast() -> None:
    stored = StoredEvent(
        originator_id=uuid4(),
        originator_version=2,
        topic=f"{__name__}:Sample.Versioned",
        state=MAPPER.transcoder.encode(
            {"timestamp": datetime.now(UTC) - timedelta(days=1), "length": 4}
        ),
    )
    ours, theirs = DECODER.decode(stored), MAPPER.to_domain_event(stored)
    assert ours.__dict__ == theirs.__dict__
    assert ours.__dict__["size"] == 40
