"""Calling an agent of any kind: A2A agents with the A2A client, n8n workflows by POSTing to
their webhook. Both answer with an ``AgentReply`` and fail with an ``AgentCallError``, so the
driver treats every call alike; only A2A calls have tasks to cancel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from flowledger.a2a import AgentAuth, AgentClient
from flowledger.a2a.reply import AgentReply
from flowledger.n8n.caller import N8nCaller


class AgentCaller(Protocol):
    async def send(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        auth: AgentAuth,
        timeout_s: float,
        on_task: Callable[[str], Awaitable[None]] | None = None,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AgentReply: ...

    async def cancel(self, url: str, task_id: str, *, auth: AgentAuth, timeout_s: float) -> Any: ...

    async def aclose(self) -> None: ...


class AgentCallers:
    """The caller for each agent kind (``a2a``, ``n8n``)."""

    def __init__(self, a2a: AgentClient | None = None, n8n: N8nCaller | None = None) -> None:
        self.a2a = a2a or AgentClient()
        self.n8n = n8n or N8nCaller()
        self._by_kind: dict[str, AgentCaller] = {"a2a": self.a2a, "n8n": self.n8n}

    async def send(
        self, url: str, payload: Mapping[str, Any], *, kind: str = "a2a", **call: Any
    ) -> AgentReply:
        caller = self._by_kind.get(kind)
        if caller is None:
            raise ValueError(f"no caller for agents of kind {kind!r}")
        return await caller.send(url, payload, **call)

    async def cancel(self, url: str, task_id: str, *, auth: AgentAuth, timeout_s: float) -> Any:
        """Cancel an agent's task; only A2A calls have one."""
        return await self.a2a.cancel(url, task_id, auth=auth, timeout_s=timeout_s)

    async def aclose(self) -> None:
        await self.a2a.aclose()
        await self.n8n.aclose()
