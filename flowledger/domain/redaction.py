"""Hiding secrets in event data before it is shown (audit log, responses, envelopes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from flowledger.domain.agents import MASK, mask_auth_config

SECRET_FIELDS: Final = frozenset({"secret", "password", "token", "key_hash", "secret_hash"})


def redact(data: Any) -> Any:
    """A copy of JSON-like data with secrets masked: every ``auth_config`` object is masked the
    way agent responses show it, and fields named like secrets are replaced by a mask."""
    if isinstance(data, Mapping):
        shown: dict[str, Any] = {}
        for key, value in data.items():
            if key == "auth_config" and (value is None or isinstance(value, Mapping)):
                shown[key] = mask_auth_config(value)
            elif key in SECRET_FIELDS and value is not None:
                shown[key] = MASK
            else:
                shown[key] = redact(value)
        return shown
    if isinstance(data, list | tuple):
        return [redact(item) for item in data]
    return data
