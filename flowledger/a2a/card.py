"""Agent cards: where an agent's card is read from, and what flowledger keeps of it.

A base URL is looked up at the well-known path (``/.well-known/agent-card.json``), then at the
legacy ``/.well-known/agent.json`` an older agent may serve; a URL ending in ``.json`` is the
card itself.

Skill schemas (ADR 0021). A2A has no field for the JSON Schema of a skill's input or output; an
agent declares them with an extension in its card's capabilities::

    "capabilities": {"extensions": [{
        "uri": "https://flowledger.dev/a2a/extensions/skill-schemas/v1",
        "required": false,
        "params": {"skills": {"<skill id>": {"input_schema": {...}, "output_schema": {...}}}}}]}

Each schema describes the one data part a step sends (input) or gets back (output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import httpx
from a2a.client import A2ACardResolver, AgentCardResolutionError
from a2a.types import AgentCard
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, TransportProtocol

from flowledger.a2a.auth import AgentAuth
from flowledger.a2a.errors import card_error
from flowledger.a2a.output import python_value
from flowledger.domain.contracts import SkillContract

__all__ = [
    "LEGACY_AGENT_CARD_PATH",
    "SKILL_SCHEMAS_EXTENSION",
    "AgentCardInfo",
    "resolve_card",
    "skill_contracts",
]

LEGACY_AGENT_CARD_PATH: Final = "/.well-known/agent.json"
SKILL_SCHEMAS_EXTENSION: Final = "https://flowledger.dev/a2a/extensions/skill-schemas/v1"
"""The card extension that declares each skill's input and output JSON Schemas (ADR 0021)."""


@dataclass(frozen=True)
class AgentCardInfo:
    """What flowledger keeps from an agent card."""

    name: str
    version: str
    description: str
    latency_ms: float
    """How long fetching the card took."""
    url: str
    """The JSON-RPC endpoint the card advertises."""
    streaming: bool
    protocol_version: str
    skills: tuple[str, ...] = ()
    contracts: tuple[SkillContract, ...] = ()
    """The skills' declared schemas (the skill schemas extension), if any."""

    @classmethod
    def of(cls, card: AgentCard, *, latency_ms: float) -> AgentCardInfo:
        interfaces = list(card.supported_interfaces)
        jsonrpc = [i for i in interfaces if i.protocol_binding == TransportProtocol.JSONRPC.value]
        interface = (jsonrpc or interfaces or [None])[0]
        return cls(
            name=card.name,
            version=card.version,
            description=card.description,
            latency_ms=round(latency_ms, 3),
            url=interface.url if interface else "",
            streaming=card.capabilities.streaming,
            protocol_version=interface.protocol_version if interface else "",
            skills=tuple(skill.name or skill.id for skill in card.skills),
            contracts=skill_contracts(card),
        )


def skill_contracts(card: AgentCard) -> tuple[SkillContract, ...]:
    """The skill schemas the card declares with the skill schemas extension (none without it;
    a declaration that is not an object is ignored)."""
    found: list[SkillContract] = []
    for extension in card.capabilities.extensions:
        if extension.uri != SKILL_SCHEMAS_EXTENSION:
            continue
        params = {key: python_value(value) for key, value in extension.params.fields.items()}
        skills = params.get("skills")
        if not isinstance(skills, dict):
            continue
        for skill_id, declared in skills.items():
            if not isinstance(declared, dict):
                continue
            found.append(
                SkillContract(
                    skill_id=str(skill_id),
                    input_schema=_schema(declared.get("input_schema")),
                    output_schema=_schema(declared.get("output_schema")),
                )
            )
    return tuple(found)


def _schema(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


async def resolve_card(
    http: httpx.AsyncClient, url: str, auth: AgentAuth, *, http_timeout_s: float
) -> AgentCard:
    """Read the agent card of the agent at ``url`` (a base URL or the card's own URL)."""
    kwargs: dict[str, Any] = {"headers": auth.headers(), "timeout": http_timeout_s}
    if _is_card_url(url):
        resolver = A2ACardResolver(http, url, agent_card_path="")
        paths: list[str | None] = [None]
    else:
        resolver = A2ACardResolver(http, url)
        paths = [AGENT_CARD_WELL_KNOWN_PATH, LEGACY_AGENT_CARD_PATH]
    for path in paths:
        try:
            return await resolver.get_agent_card(relative_card_path=path, http_kwargs=kwargs)
        except AgentCardResolutionError as exc:
            if exc.status_code == 404 and path != paths[-1]:
                continue  # an older agent may serve the card at the legacy path
            raise card_error(exc, url) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _is_card_url(url: str) -> bool:
    return url.rstrip("/").endswith(".json")
