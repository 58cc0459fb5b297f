"""Agents: external services that workflow steps call over the A2A protocol.

An agent is registered with a unique name, an endpoint, how to authenticate to it, a call
timeout and a retry policy. It can be reconfigured, deactivated, activated again and deleted
(soft: the record stays, the name becomes free, new workflows may not use it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args
from urllib.parse import urlsplit

from eventsourcing.domain import Aggregate, event

from flowledger.domain.backoff import Backoff
from flowledger.domain.errors import FieldProblem, raise_if_any
from flowledger.domain.lifecycle import Switchable

AgentStatus = Literal["active", "inactive", "deleted"]
AgentKind = Literal["a2a", "n8n"]
"""How a step calls the agent: over A2A, or by POSTing to an n8n workflow's webhook."""
AuthType = Literal["none", "bearer", "apikey"]
"""How flowledger authenticates to an agent; the one definition, the A2A client's included."""

AUTH_TYPES: Final[tuple[AuthType, ...]] = get_args(AuthType)
NAME_MAX_LENGTH: Final = 255
URL_MAX_LENGTH: Final = 512
DESCRIPTION_MAX_LENGTH: Final = 10_000
TIMEOUT_MS_MIN: Final = 1_000
TIMEOUT_MS_MAX: Final = 300_000
DEFAULT_TIMEOUT_MS: Final = 30_000
SECRET_MAX_LENGTH: Final = 4_096
MASK: Final = "********"

# Which auth_config keys each auth_type takes; the first set is required, the second optional.
AUTH_CONFIG_KEYS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    "none": (frozenset(), frozenset()),
    "bearer": (frozenset({"token"}), frozenset()),
    "apikey": (frozenset({"key"}), frozenset({"header"})),
}
SECRET_KEYS: Final = frozenset({"token", "key"})
DEFAULT_APIKEY_HEADER: Final = "X-API-Key"
RETRY_RANGES: Final[dict[str, tuple[float, float]]] = {
    "max_retries": (0, 10),
    "initial_delay_ms": (100, 60_000),
    "max_delay_ms": (1_000, 600_000),
    "backoff_multiplier": (1.0, 10.0),
}
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed agent call is tried again."""

    max_retries: int = 3
    initial_delay_ms: int = 1_000
    max_delay_ms: int = 30_000
    backoff_multiplier: float = 2.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetryPolicy:
        return cls(**{k: data[k] for k in cls.field_names() if k in data})

    @classmethod
    def parse(
        cls, data: object, base: RetryPolicy | None = None, prefix: str = "retry_config"
    ) -> tuple[RetryPolicy, list[FieldProblem]]:
        """A policy from (possibly partial) input over ``base``, and every problem with it."""
        base = base or cls()
        if data is None:
            return base, []
        if not isinstance(data, Mapping):
            return base, [FieldProblem(prefix, "must be an object")]
        unknown = sorted(set(data) - set(cls.field_names()))
        policy = cls.from_dict({**base.to_dict(), **data})
        problems = [FieldProblem(f"{prefix}.{key}", "is not a retry setting") for key in unknown]
        return policy, problems + policy.problems(prefix)

    @staticmethod
    def field_names() -> tuple[str, ...]:
        return ("max_retries", "initial_delay_ms", "max_delay_ms", "backoff_multiplier")

    def to_dict(self) -> dict[str, Any]:
        # Its fields are plain values: a copy of them, not asdict's recursive deep copy (which
        # was a tenth of a run request's decision).
        return {name: getattr(self, name) for name in self.field_names()}

    def problems(self, prefix: str = "retry_config") -> list[FieldProblem]:
        found: list[FieldProblem] = []
        for name, (low, high) in RETRY_RANGES.items():
            value = getattr(self, name)
            integral = name != "backoff_multiplier"
            if isinstance(value, bool) or not isinstance(value, int | float):
                found.append(FieldProblem(f"{prefix}.{name}", "must be a number"))
            elif integral and not isinstance(value, int):
                found.append(FieldProblem(f"{prefix}.{name}", "must be an integer"))
            elif not low <= value <= high:
                found.append(FieldProblem(f"{prefix}.{name}", f"must be between {low} and {high}"))
        if not found and self.initial_delay_ms > self.max_delay_ms:
            found.append(
                FieldProblem(f"{prefix}.initial_delay_ms", "must not be greater than max_delay_ms")
            )
        return found

    @property
    def backoff(self) -> Backoff:
        """The waits between retries, in milliseconds, with jitter: each one a random half to
        all of the capped exponential delay, so retries of many runs spread out."""
        return Backoff(
            self.initial_delay_ms, self.max_delay_ms, self.backoff_multiplier, jitter=(0.5, 1.0)
        )


def name_problems(name: object, field: str = "name") -> list[FieldProblem]:
    if not isinstance(name, str):
        return [FieldProblem(field, "must be a string")]
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        return [FieldProblem(field, f"must be 1 to {NAME_MAX_LENGTH} characters long")]
    if name != name.strip():
        return [FieldProblem(field, "must not start or end with whitespace")]
    if _CONTROL.search(name):
        return [FieldProblem(field, "must not contain control characters")]
    return []


def url_problems(url: object, field: str = "url") -> list[FieldProblem]:
    if not isinstance(url, str):
        return [FieldProblem(field, "must be a string")]
    if not 1 <= len(url) <= URL_MAX_LENGTH:
        return [FieldProblem(field, f"must be 1 to {URL_MAX_LENGTH} characters long")]
    if any(c.isspace() for c in url) or _CONTROL.search(url):
        return [FieldProblem(field, "must not contain whitespace or control characters")]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return [FieldProblem(field, f"is not a valid URL ({error})")]
    if parts.scheme not in ("http", "https"):
        return [FieldProblem(field, "must be an http:// or https:// URL")]
    if not parts.hostname:
        return [FieldProblem(field, "must name a host")]
    if parts.username is not None or parts.password is not None:
        return [FieldProblem(field, "must not contain credentials; use auth_config")]
    if port == 0:
        return [FieldProblem(field, "must not use port 0")]
    if parts.fragment:
        return [FieldProblem(field, "must not contain a fragment")]
    return []


def description_problems(description: object) -> list[FieldProblem]:
    if description is None:
        return []
    if not isinstance(description, str):
        return [FieldProblem("description", "must be a string or null")]
    if len(description) > DESCRIPTION_MAX_LENGTH:
        return [FieldProblem("description", f"must be at most {DESCRIPTION_MAX_LENGTH} characters")]
    if "\x00" in description:  # PostgreSQL text and jsonb cannot hold it
        return [FieldProblem("description", "must not contain NUL characters")]
    return []


def timeout_problems(timeout_ms: object, field: str = "timeout_ms") -> list[FieldProblem]:
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int):
        return [FieldProblem(field, "must be an integer")]
    if not TIMEOUT_MS_MIN <= timeout_ms <= TIMEOUT_MS_MAX:
        return [FieldProblem(field, f"must be between {TIMEOUT_MS_MIN} and {TIMEOUT_MS_MAX}")]
    return []


def auth_problems(auth_type: object, auth_config: object) -> list[FieldProblem]:
    if auth_type not in AUTH_TYPES:
        return [FieldProblem("auth_type", "must be one of none, bearer, apikey")]
    if auth_config is None:
        auth_config = {}
    if not isinstance(auth_config, Mapping):
        return [FieldProblem("auth_config", "must be an object or null")]
    required, optional = AUTH_CONFIG_KEYS[str(auth_type)]
    found: list[FieldProblem] = []
    for key in sorted(set(auth_config) - required - optional):
        found.append(
            FieldProblem(f"auth_config.{key}", f"is not a setting of auth_type {auth_type}")
        )
    for key in sorted(required - set(auth_config)):
        found.append(FieldProblem(f"auth_config.{key}", f"is required for auth_type {auth_type}"))
    for key in sorted(set(auth_config) & (required | optional)):
        value = auth_config[key]
        if not isinstance(value, str) or not 1 <= len(value) <= SECRET_MAX_LENGTH:
            found.append(
                FieldProblem(
                    f"auth_config.{key}", f"must be a string of 1 to {SECRET_MAX_LENGTH} characters"
                )
            )
        elif key == "header" and not _HEADER_NAME.match(value):
            found.append(FieldProblem("auth_config.header", "must be a valid HTTP header name"))
        elif _CONTROL.search(value):
            found.append(FieldProblem(f"auth_config.{key}", "must not contain control characters"))
    return found


def mask_auth_config(auth_config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The auth config with every secret replaced by a mask; what responses and the audit show."""
    if not auth_config:
        return None
    return {key: (MASK if key in SECRET_KEYS else value) for key, value in auth_config.items()}


UPDATABLE_FIELDS: Final = (
    "url",
    "description",
    "auth_type",
    "auth_config",
    "timeout_ms",
    "retry_config",
)


class Agent(Switchable, Aggregate):
    """An external A2A service that workflow steps call.

    Activated, deactivated and (softly) deleted as :class:`Switchable` says: a deleted agent
    stays readable but can no longer be used or changed.
    """

    noun = "agent"

    class Registered(Aggregate.Created):
        name: str
        url: str
        description: str | None
        auth_type: str
        auth_config: dict[str, str] | None
        timeout_ms: int
        retry_config: dict[str, Any]
        kind: str
        origin: dict[str, Any] | None
        """Where an agent made by a sync comes from (integration and external workflow ids)."""
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Agents registered before kinds existed are A2A agents."""
            state["kind"] = "a2a"
            state["origin"] = None

    class Updated(Aggregate.Event):
        changes: dict[str, Any]
        """The new values of the fields that changed."""
        previous: dict[str, Any]
        """Their values before."""

    @classmethod
    def register(
        cls,
        *,
        name: str,
        url: str,
        description: str | None = None,
        auth_type: str = "none",
        auth_config: Mapping[str, str] | None = None,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        retry_config: Mapping[str, Any] | None = None,
        kind: AgentKind = "a2a",
        origin: Mapping[str, Any] | None = None,
    ) -> Agent:
        retry, retry_problems = RetryPolicy.parse(retry_config)
        raise_if_any(
            name_problems(name)
            + url_problems(url)
            + description_problems(description)
            + auth_problems(auth_type, auth_config)
            + timeout_problems(timeout_ms)
            + retry_problems
        )
        return cls(
            name=name,
            url=url,
            description=description,
            auth_type=auth_type,
            auth_config=_normalised_auth(auth_type, auth_config),
            timeout_ms=timeout_ms,
            retry_config=retry.to_dict(),
            kind=kind,
            origin=dict(origin) if origin is not None else None,
        )

    @event(Registered)
    def __init__(
        self,
        name: str,
        url: str,
        description: str | None,
        auth_type: str,
        auth_config: dict[str, str] | None,
        timeout_ms: int,
        retry_config: dict[str, Any],
        kind: str,
        origin: dict[str, Any] | None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.origin = origin
        self.url = url
        self.description = description
        self.auth_type = auth_type
        self.auth_config = auth_config
        self.timeout_ms = timeout_ms
        self.retry_config = retry_config
        self.status: AgentStatus = "active"

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.from_dict(self.retry_config)

    @property
    def masked_auth_config(self) -> dict[str, Any] | None:
        return mask_auth_config(self.auth_config)

    def settings(self) -> dict[str, Any]:
        """The updatable fields and their current values."""
        return {name: getattr(self, name) for name in UPDATABLE_FIELDS}

    def update(self, changes: Mapping[str, Any]) -> None:
        """Reconfigure the agent with the given fields; absent fields keep their values.

        ``retry_config`` merges into the current policy. Changing ``auth_type`` needs a matching
        ``auth_config`` (none clears it). Nothing is recorded when nothing changes.
        """
        self._refuse_if_deleted("update")
        unknown = sorted(set(changes) - set(UPDATABLE_FIELDS))
        raise_if_any([FieldProblem(key, "is not an updatable field") for key in unknown])
        proposed = self.settings()
        proposed.update({k: v for k, v in changes.items() if k != "retry_config"})
        if "auth_type" in changes and "auth_config" not in changes:
            proposed["auth_config"] = None if changes["auth_type"] == "none" else {}
        retry, problems = RetryPolicy.parse(changes.get("retry_config"), base=self.retry_policy)
        proposed["retry_config"] = retry.to_dict()
        problems += url_problems(proposed["url"]) + description_problems(proposed["description"])
        problems += auth_problems(proposed["auth_type"], proposed["auth_config"])
        problems += timeout_problems(proposed["timeout_ms"])
        raise_if_any(problems)
        proposed["auth_config"] = _normalised_auth(proposed["auth_type"], proposed["auth_config"])
        current = self.settings()
        changed = {k: v for k, v in proposed.items() if current[k] != v}
        if changed:
            self._record_update(changes=changed, previous={k: current[k] for k in changed})

    @event(Updated)
    def _record_update(self, changes: dict[str, Any], previous: dict[str, Any]) -> None:
        for key, value in changes.items():
            setattr(self, key, value)


def _normalised_auth(
    auth_type: str, auth_config: Mapping[str, str] | None
) -> dict[str, str] | None:
    if auth_type == "none":
        return None
    config = dict(auth_config or {})
    if auth_type == "apikey":
        config.setdefault("header", DEFAULT_APIKEY_HEADER)
    return config
