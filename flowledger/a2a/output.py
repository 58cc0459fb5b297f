"""A2A parts and ``google.protobuf.Value`` as plain Python: the reply's output value.

:func:`parts_to_output` is the reply contract (see the package docstring,
:mod:`flowledger.a2a`). A2A carries data parts as protobuf ``Value``, which stores every number
as a double; whole numbers are turned back into ints here.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any, Final

from a2a.types import Message, Part

__all__ = ["message_text", "metadata_retryable", "parts_to_output", "python_value"]

_MAX_SAFE_INT: Final = 2**53


def parts_to_output(parts: Sequence[Part]) -> Any:
    """The reply contract: see the package docstring."""
    if not parts:
        return None
    if all(part.WhichOneof("content") == "text" for part in parts):
        return {"text": "\n".join(part.text for part in parts)}
    values = [_part_value(part) for part in parts]
    return values[0] if len(values) == 1 else values


def python_value(value: Any) -> Any:
    """A ``google.protobuf.Value`` as plain Python, whole numbers as ints."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {key: python_value(item) for key, item in value.struct_value.fields.items()}
    if kind == "list_value":
        return [python_value(item) for item in value.list_value.values]
    if kind == "number_value":
        return _number(float(value.number_value))
    if kind in ("string_value", "bool_value"):
        return getattr(value, kind)
    return None  # null_value, or no value at all


def message_text(message: Message | None) -> str:
    """What an agent said in a (status) message, as one line for an error message."""
    if message is None:
        return ""
    texts = [part.text for part in message.parts if part.WhichOneof("content") == "text"]
    if texts:
        return " ".join(text.strip() for text in texts if text.strip())
    data = [python_value(part.data) for part in message.parts if part.HasField("data")]
    return str(data[0]) if len(data) == 1 else (str(data) if data else "")


def metadata_retryable(*messages: Any) -> bool | None:
    """The first boolean ``retryable`` in the metadata of ``messages`` (a Message or a Task)."""
    for holder in messages:
        if holder is None:
            continue
        fields = holder.metadata.fields
        if "retryable" in fields:
            flag = python_value(fields["retryable"])
            if isinstance(flag, bool):
                return flag
    return None


def _number(number: float) -> int | float:
    """Whole doubles back to ints (protobuf's ``Value`` stores every number as a double)."""
    if math.isfinite(number) and number.is_integer() and abs(number) <= _MAX_SAFE_INT:
        return int(number)
    return number


def _part_value(part: Part) -> Any:
    kind = part.WhichOneof("content")
    if kind == "data":
        return python_value(part.data)
    if kind == "text":
        return {"text": part.text}
    described = {"media_type": part.media_type or None, "filename": part.filename or None}
    if kind == "url":
        return {"url": part.url, **described}
    if kind == "raw":
        return {"raw_base64": base64.b64encode(part.raw).decode("ascii"), **described}
    return None
