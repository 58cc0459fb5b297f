"""redact: secrets masked anywhere in JSON-like data, everything else copied as it is; the
envelope's shortcut for data with no secret-like key gives the same."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flowledger.domain.agents import MASK, mask_auth_config
from flowledger.domain.redaction import SECRET_FIELDS, redact
from flowledger.eventlog.envelope import redacted


def reference(data: Any) -> Any:
    """The plain recursive definition the fast version must agree with."""
    if isinstance(data, Mapping):
        shown: dict[str, Any] = {}
        for key, value in data.items():
            if key == "auth_config" and (value is None or isinstance(value, Mapping)):
                shown[key] = mask_auth_config(value)
            elif key in SECRET_FIELDS and value is not None:
                shown[key] = MASK
            else:
                shown[key] = reference(value)
        return shown
    if isinstance(data, list | tuple):
        return [reference(item) for item in data]
    return data


keys = st.sampled_from(["auth_config", "token", "secret", "name", "url", "password", "x"])
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_like)
def test_agrees_with_the_plain_definition(data: Any) -> None:
    assert redact(data) == reference(data)


def test_masks_nested_secrets_and_copies() -> None:
    data = {"a": [{"token": "t", "auth_config": {"token": "x", "header": "H"}}], "n": 1}
    shown = redact(data)
    assert shown == {"a": [{"token": MASK, "auth_config": {"token": MASK, "header": "H"}}], "n": 1}
    assert shown is not data and shown["a"] is not data["a"]


builtins_only = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)


@given(st.dictionaries(keys | st.text(max_size=8), builtins_only, max_size=6))
def test_the_envelopes_redaction_agrees_with_redact(data: dict[str, Any]) -> None:
    assert redacted(data) == redact(data)
