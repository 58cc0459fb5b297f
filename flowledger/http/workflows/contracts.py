"""The contracts a workflow's agents declare, read from their A2A cards now, for the contract
checks of dry runs (``/test``) and of ``POST``/``PUT /workflows?check=contracts`` (ADR 0021)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from flowledger.a2a import AgentAuth, AgentCallError, AgentClient
from flowledger.commands.agents import find_agent_by_name
from flowledger.domain.agents import Agent
from flowledger.domain.contracts import AgentContract, ContractProblem
from flowledger.domain.plans import WorkflowPlan
from flowledger.eventlog.store import EventStore

CARD_TIMEOUT_S: Final = 5.0
"""The longest a check waits for one card (less when the agent's own timeout is shorter)."""


class ContractProblemBody(msgspec.Struct):
    """A value a step sends or reads that does not fit what an agent declares."""

    step_id: str
    field: Annotated[
        str,
        Meta(
            description="`input.<path>` (the resolved input), `output.<path>` (a mocked "
            "output), `input_mapping.<key>` (the definition); `agents.<name>` when its card "
            "could not be read.",
            examples=["input_mapping.words"],
        ),
    ]
    message: Annotated[
        str,
        Meta(
            examples=[
                "$.steps.shout.output.words: agent 'transform' does not declare 'words' in its "
                "output (it declares: length, text, word_count)"
            ]
        ),
    ]

    @classmethod
    def of(cls, problem: ContractProblem) -> ContractProblemBody:
        return cls(problem.step_id, problem.field, problem.message)


class AgentContractStatus(msgspec.Struct):
    """What was checked against an agent."""

    agent_name: str
    declared: Annotated[bool, Meta(description="Its card declares skill schemas.")]
    skills: Annotated[list[str], Meta(description="The skills whose schemas it declares.")]
    error: Annotated[
        str | None, Meta(description="Why its card could not be read (nothing was checked).")
    ] = None


@dataclass(frozen=True)
class Contracts:
    by_agent: dict[str, AgentContract]
    statuses: list[AgentContractStatus]

    def unread(self) -> list[ContractProblemBody]:
        """A warning for each agent whose card could not be read."""
        return [
            ContractProblemBody("", f"agents.{s.agent_name}", f"not checked: {s.error}")
            for s in self.statuses
            if s.error
        ]


async def read_contracts(store: EventStore, plan: WorkflowPlan) -> Contracts:
    """The declared contracts of every agent the plan calls, their cards read at once. The
    agents are read from the write side, as a run would pin them (no projection lag)."""
    names = list(
        dict.fromkeys(step.agent_name for step in plan.steps if step.agent_name is not None)
    )
    agents = await asyncio.to_thread(lambda: {n: find_agent_by_name(store, n) for n in names})
    async with AgentClient() as client:
        found = await asyncio.gather(*(_read(client, n, agents[n]) for n in names))
    return Contracts(
        by_agent={contract.agent_name: contract for contract, _ in found if contract.skills},
        statuses=[status for _, status in found],
    )


async def _read(
    client: AgentClient, name: str, agent: Agent | None
) -> tuple[AgentContract, AgentContractStatus]:
    none = AgentContract(name, ())
    if agent is None:
        return none, AgentContractStatus(name, False, [], f"no agent named {name!r}")
    try:
        card = await client.fetch_agent_card(
            agent.url,
            timeout_s=min(agent.timeout_ms / 1000, CARD_TIMEOUT_S),
            auth=AgentAuth.from_config(agent.auth_type, agent.auth_config),
        )
    except (AgentCallError, ValueError) as error:
        return none, AgentContractStatus(name, False, [], f"its card could not be read: {error}")
    contract = AgentContract(name, card.contracts)
    skills = [skill.skill_id for skill in card.contracts]
    return contract, AgentContractStatus(name, bool(skills), skills)
