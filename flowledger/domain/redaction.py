"""Hiding secrets in event data before it is shown (audit log, responses, envelopes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from flowledger.domain.agents import MASK, mask_auth_config

SECRET_FIELDS: Final = frozenset(
    {
        "secret",
        "password",
        "token",
        "key_hash",
        "secret_hash",
        "password_hash",
        "token_hash",
        "access_token",
        "refresh_token",
        "api_key",
    }
)
SECRET_KEYS: Final = frozenset({*SECRET_FIELDS, "auth_config"})
"""Every key :func:`redact` masks under."""
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})
"""Types returned as they are. Checked by exact type first: the relay redacts every event it
publishes, and ``isinstance`` against the ``Mapping`` ABC dominated its time."""


def redact(data: Any) -> Any:
    """A copy of JSON-like data with secrets masked: every ``auth_config`` object is masked the
    way agent responses show it, and fields named like secrets are replaced by a mask."""
    kind = type(data)
    if kind in _PLAIN:
        return data
    if kind is dict or (kind is not list and isinstance(data, Mapping)):
        shown: dict[str, Any] = {}
        for key, value in data.items():
            if key == "auth_config" and (value is None or isinstance(value, Mapping)):
                shown[key] = mask_auth_config(value)
            elif key in SECRET_FIELDS and value is not None:
                shown[key] = MASK
            elif type(value) in _PLAIN:
                shown[key] = value
            else:
                shown[key] = redact(value)
        return shown
    if isinstance(data, list | tuple):
        return [item if type(item) in _PLAIN else redact(item) for item in data]
    return data
