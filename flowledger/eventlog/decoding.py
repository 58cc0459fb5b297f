"""Decoding stored events as the event store's own mapper does, at a fraction of its cost.

The ``eventsourcing`` mapper decodes an event's JSON state with Python's :mod:`json` module and
an ``object_hook`` written in Python, called for every JSON object. Followers decode every
event of the log, so this module keeps the mapper (topics, id conversion, upcasting, cipher and
compression work as before) and gives it a transcoder that parses with msgspec, then restores
the transcoded values (``{"_type_": "uuid_hex", "_data_": "..."}``) in one walk, innermost
first, exactly as the ``object_hook`` would. Encoding is the library's own, unchanged: what is
stored stays byte for byte what the store writes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Transcoder,
    TranscodingNotRegisteredError,
    find_id_convertor,
)
from eventsourcing.utils import resolve_topic

_TYPE = "_type_"
_DATA = "_data_"
_WRAPPED = b'"_type_":'
"""How a transcoded value starts in the stored JSON (a string holding it has its quotes
escaped, so counting these counts the transcoded values, plus any object with that key)."""


class MsgspecJSONTranscoder(JSONTranscoder):
    """The library's JSON transcoder, decoding with msgspec: the same values, faster."""

    def __init__(self, like: JSONTranscoder | None = None) -> None:
        super().__init__()
        self._decoder = msgspec.json.Decoder()
        if like is not None:
            for transcoding in like.names.values():
                self.register(transcoding)

    def decode(self, data: bytes) -> Any:
        try:
            parsed = self._decoder.decode(data)
        except msgspec.DecodeError:  # what only Python's json reads (NaN, Infinity)
            return super().decode(data)
        wrapped = data.count(_WRAPPED)
        if not wrapped:
            return parsed
        if type(parsed) is dict and self._restore_fields(parsed) == wrapped:
            return parsed  # every transcoded value was an event field (times, ids): done
        return self._restore(parsed)

    def _restore_fields(self, state: dict[str, Any]) -> int:
        """Restore the transcoded values that are fields of the state itself (not nested in
        other values); how many there were."""
        restored = 0
        for key, value in state.items():
            if (
                type(value) is dict
                and len(value) == 2
                and _TYPE in value
                and type(value.get(_DATA)) is str
            ):
                state[key] = self._transcoded(value)
                restored += 1
        return restored

    def _restore(self, value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                if type(item) is dict or type(item) is list:
                    value[key] = self._restore(item)
            if len(value) == 2 and _TYPE in value and _DATA in value:
                return self._transcoded(value)
            return value
        if kind is list:
            return [
                self._restore(item) if type(item) is dict or type(item) is list else item
                for item in value
            ]
        return value

    def _transcoded(self, value: dict[str, Any]) -> Any:
        name = value[_TYPE]
        try:
            transcoding = self.names[name]
        except (KeyError, TypeError) as error:
            raise TranscodingNotRegisteredError(
                f"Data serialized with name '{name}' is not deserializable. Please register a "
                "custom transcoding for this type."
            ) from error
        return transcoding.decode(value[_DATA])


class EventDecoder:
    """Turns stored events (and notifications) into domain events, as ``store.decode`` does:
    the library's mapper with :class:`MsgspecJSONTranscoder`, and, for stores that neither
    encrypt nor compress, its steps done with what each event class needs looked up once."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        """``mapper``: the event store's (``store.mapper``)."""
        transcoder = mapper.transcoder
        if isinstance(transcoder, JSONTranscoder):
            transcoder = MsgspecJSONTranscoder(like=transcoder)
        self._transcoder: Transcoder = transcoder
        self._mapper: Mapper[Any] = Mapper(
            transcoder=transcoder, compressor=mapper.compressor, cipher=mapper.cipher
        )
        self._plain = mapper.cipher is None and mapper.compressor is None
        self._kinds: dict[tuple[str, type], _Kind] = {}

    def decode(self, stored: StoredEvent) -> DomainEventProtocol[Any]:
        if not self._plain:
            return self._mapper.to_domain_event(stored)
        kind = self._kinds.get((stored.topic, type(stored.originator_id)))
        if kind is None:
            kind = self._kind(stored)
        try:
            state: dict[str, Any] = self._transcoder.decode(stored.state)
        except Exception:  # the library's own error, with the event named
            return self._mapper.to_domain_event(stored)
        state["originator_id"] = kind.convert_id(stored.originator_id)
        state["originator_version"] = stored.originator_version
        if kind.class_version != 1 or "class_version" in state:
            from_version = state.pop("class_version", 1)
            while from_version < kind.class_version:
                getattr(kind.cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
                from_version += 1
        event: object = object.__new__(kind.cls)
        object.__setattr__(event, "__dict__", state)
        return cast(DomainEventProtocol[Any], event)

    def _kind(self, stored: StoredEvent) -> _Kind:
        cls = resolve_topic(stored.topic)
        id_type = type(stored.originator_id)
        kind = _Kind(
            cls=cls,
            class_version=getattr(cls, "class_version", 1),
            convert_id=find_id_convertor(cls, cast(Hashable, id_type)),
        )
        self._kinds[(stored.topic, id_type)] = kind
        return kind


@dataclass(frozen=True)
class _Kind:
    """What decoding needs to know of one event class (looked up once)."""

    cls: type
    class_version: int
    convert_id: Callable[[Any], Any]
