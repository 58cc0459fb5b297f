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

from typing import Any

import msgspec
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    StoredEvent,
    TranscodingNotRegisteredError,
)

from flowledger.eventlog.store import EventStore

_TYPE = "_type_"
_DATA = "_data_"


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
        return self._restore(parsed)

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
    """Turns stored events (and notifications) into domain events, as ``store.decode`` does."""

    def __init__(self, store: EventStore) -> None:
        mapper = store.mapper
        transcoder = mapper.transcoder
        if isinstance(transcoder, JSONTranscoder):
            transcoder = MsgspecJSONTranscoder(like=transcoder)
        self._mapper: Mapper[Any] = Mapper(
            transcoder=transcoder, compressor=mapper.compressor, cipher=mapper.cipher
        )

    def decode(self, stored: StoredEvent) -> DomainEventProtocol[Any]:
        return self._mapper.to_domain_event(stored)
