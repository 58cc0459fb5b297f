"""Request and response bodies for agents (the spec's AgentCreate/AgentUpdate/AgentResponse)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from flowledger.domain import agents as rules
from flowledger.domain.agents import Agent

AuthTypeField = Annotated[
    rules.AuthType,
    Meta(description="How flowledger authenticates to the agent.", examples=["bearer"]),
]
AuthConfigField = Annotated[
    dict[str, str],
    Meta(
        description=(
            "Credentials for `auth_type`: bearer takes `token`; apikey takes `key` and an "
            "optional `header` (default `X-API-Key`); none takes nothing. Stored, never "
            "returned: responses show secrets as `********`."
        ),
        examples=[{"token": "s3cr3t-token"}],
    ),
]
NameField = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=rules.NAME_MAX_LENGTH,
        description="Unique among agents that are not deleted; steps refer to agents by name.",
        examples=["summarizer"],
    ),
]
UrlField = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=rules.URL_MAX_LENGTH,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://",
        description="Base URL of the agent's A2A JSON-RPC endpoint (http or https).",
        examples=["http://127.0.0.1:9101"],
    ),
]
DescriptionField = Annotated[
    str,
    Meta(
        max_length=rules.DESCRIPTION_MAX_LENGTH,
        examples=["Summarises documents into three bullet points."],
    ),
]
TimeoutField = Annotated[
    int,
    Meta(
        ge=rules.TIMEOUT_MS_MIN,
        le=rules.TIMEOUT_MS_MAX,
        description="Timeout of one call to the agent, in milliseconds.",
        examples=[30000],
    ),
]
_R = rules.RETRY_RANGES
MaxRetries = Annotated[
    int,
    Meta(
        ge=int(_R["max_retries"][0]),
        le=int(_R["max_retries"][1]),
        description="Retries after the first attempt.",
        examples=[3],
    ),
]
InitialDelay = Annotated[
    int, Meta(ge=int(_R["initial_delay_ms"][0]), le=int(_R["initial_delay_ms"][1]), examples=[1000])
]
MaxDelay = Annotated[
    int, Meta(ge=int(_R["max_delay_ms"][0]), le=int(_R["max_delay_ms"][1]), examples=[30000])
]
Multiplier = Annotated[
    float, Meta(ge=_R["backoff_multiplier"][0], le=_R["backoff_multiplier"][1], examples=[2.0])
]


class RetryConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Retries with exponential backoff (and jitter) after a failed call."""

    max_retries: MaxRetries = 3
    initial_delay_ms: InitialDelay = 1000
    max_delay_ms: MaxDelay = 30000
    backoff_multiplier: Multiplier = 2.0


class RetryConfigPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Some retry settings; the others keep their current values."""

    max_retries: MaxRetries | UnsetType = UNSET
    initial_delay_ms: InitialDelay | UnsetType = UNSET
    max_delay_ms: MaxDelay | UnsetType = UNSET
    backoff_multiplier: Multiplier | UnsetType = UNSET


class AgentCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new agent."""

    name: NameField
    url: UrlField
    description: DescriptionField | None = None
    auth_type: AuthTypeField = "none"
    auth_config: AuthConfigField | None = None
    timeout_ms: TimeoutField = rules.DEFAULT_TIMEOUT_MS
    retry_config: RetryConfig = msgspec.field(default_factory=RetryConfig)


class AgentUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Fields to change; absent fields keep their values. The name cannot change."""

    url: UrlField | UnsetType = UNSET
    description: DescriptionField | UnsetType | None = UNSET
    auth_type: AuthTypeField | UnsetType = UNSET
    auth_config: AuthConfigField | UnsetType | None = UNSET
    timeout_ms: TimeoutField | UnsetType = UNSET
    retry_config: RetryConfigPatch | UnsetType = UNSET
    status: (
        Annotated[
            Literal["active", "inactive"],
            Meta(description="Deactivate an agent (or activate it again).", examples=["inactive"]),
        ]
        | UnsetType
    ) = UNSET


class AgentResponse(msgspec.Struct):
    """An agent as the agents projection shows it."""

    id: UUID
    name: str
    url: str
    description: str | None
    auth_type: str
    auth_config: dict[str, str] | None
    timeout_ms: int
    retry_config: RetryConfig
    status: Annotated[Literal["active", "inactive", "deleted"], Meta(examples=["active"])]
    version: int
    created_at: datetime
    updated_at: datetime
    kind: Annotated[
        Literal["a2a", "n8n"],
        Meta(
            description="How steps call it: `a2a` (registered here), or `n8n` (made by an "
            "n8n sync: the step's input is POSTed to the n8n workflow's webhook, `url`)."
        ),
    ] = "a2a"

    @classmethod
    def from_agent(cls, agent: Agent) -> AgentResponse:
        """The write side's view right after a command (same shape as the projection's)."""
        return cls(
            id=agent.id,
            name=agent.name,
            url=agent.url,
            description=agent.description,
            auth_type=agent.auth_type,
            auth_config=agent.masked_auth_config,
            timeout_ms=agent.timeout_ms,
            retry_config=msgspec.convert(agent.retry_config, RetryConfig),
            status=agent.status,
            version=agent.version,
            created_at=agent.created_on,
            updated_at=agent.modified_on,
            kind=agent.kind,  # type: ignore[arg-type]
        )


class AgentHealth(msgspec.Struct):
    """Whether the agent's A2A card answered, how fast, and what it says."""

    agent_id: UUID
    url: str
    reachable: bool
    latency_ms: float | None = None
    card_name: str | None = None
    card_version: str | None = None
    error: str | None = None
    checked_at: datetime | None = None
