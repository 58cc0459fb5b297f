"""The client: one :class:`AgentClient` calls every agent, over a2a-sdk's JSON-RPC binding.

It keeps one ``httpx.AsyncClient`` and, per agent base URL, the resolved agent card and the
a2a-sdk ``Client`` made from it (``ClientFactory(ClientConfig(httpx_client=...)).create(card)``).
How a call goes (streaming or polling, deadlines, cancelling) is described in the package
docstring (:mod:`flowledger.a2a`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import httpx
from a2a.client import Client, ClientCallContext, ClientConfig, ClientFactory
from a2a.helpers import new_data_part
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Role,
    SendMessageRequest,
    StreamResponse,
)
from a2a.utils.errors import TaskNotCancelableError

from flowledger.a2a.auth import NO_AUTH, AgentAuth
from flowledger.a2a.card import AgentCardInfo, resolve_card
from flowledger.a2a.draining import keeping_connections
from flowledger.a2a.errors import AgentCallError, call_error
from flowledger.a2a.pools import agent_http_client
from flowledger.a2a.reply import AgentReply, final_reply
from flowledger.a2a.tracker import Tracker, state_name

__all__ = ["AgentClient", "fetch_agent_card"]

logger = logging.getLogger(__name__)

_CANCEL_ON_TIMEOUT_S: Final = 2.0
# httpx gets a little more time than the call's deadline so the deadline (asyncio.timeout)
# always fires first and a timeout is reported - and handled - one way only.
_HTTP_TIMEOUT_GRACE_S: Final = 1.0


@dataclass
class _Agent:
    client: Client
    card: AgentCard


class _CallbackError(Exception):
    """Carries an exception raised by ``on_task`` past the error mapping."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class AgentClient:
    """Calls A2A agents. Reuse one instance; close it with :meth:`aclose` (or ``async with``).

    ``cancel_on_timeout``: when :meth:`send` gives up at its deadline and the task id is
    known, ask the agent to cancel the task (best effort, at most 2 s) so it stops working.
    ``http_client``: use this httpx client (not closed by :meth:`aclose`) instead of an own one
    (:func:`~flowledger.a2a.pools.agent_http_client`: at most ``max_connections`` connections
    to each agent, over aiohttp's pool). A streaming call holds one connection until it ends.
    ``poll_interval_s`` grows by half each poll up to ``max_poll_interval_s`` (agents without
    streaming, or a stream that ended before the task did).
    """

    def __init__(
        self,
        *,
        http_client: httpx.AsyncClient | None = None,
        max_connections: int = 100,
        cancel_on_timeout: bool = True,
        poll_interval_s: float = 0.2,
        max_poll_interval_s: float = 1.0,
    ) -> None:
        self._owns_http = http_client is None
        self._http = http_client or agent_http_client(max_connections)
        # The factory adds the A2A-Version header to the shared httpx client and never
        # closes it (ClientConfig.httpx_client makes it "shared").
        self._factory = ClientFactory(ClientConfig(httpx_client=self._http, streaming=True))
        self._agents: dict[str, _Agent] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._cancel_on_timeout = cancel_on_timeout
        self._poll_interval_s = poll_interval_s
        self._max_poll_interval_s = max_poll_interval_s
        self._closed = False

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        agents, self._agents = list(self._agents.values()), {}
        for agent in agents:
            with contextlib.suppress(Exception):
                await agent.client.close()
        if self._owns_http:
            await self._http.aclose()

    # --- agent cards ---------------------------------------------------------------------

    async def fetch_agent_card(
        self, base_url: str, *, timeout_s: float, auth: AgentAuth | None = None
    ) -> AgentCardInfo:
        """Fetch the agent card now (not from the cache) and remember it for later calls."""
        url = _normalize_url(base_url)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                card = await self._resolve_card(url, auth or NO_AUTH, timeout_s)
        except TimeoutError:
            raise AgentCallError(
                f"agent card at {url} did not arrive within {timeout_s:g} s",
                retryable=True,
                kind="timeout",
            ) from None
        latency_ms = (time.perf_counter() - started) * 1000
        self._remember(url, card)
        return AgentCardInfo.of(card, latency_ms=latency_ms)

    async def _resolve_card(self, url: str, auth: AgentAuth, timeout_s: float) -> AgentCard:
        return await resolve_card(
            self._http, url, auth, http_timeout_s=timeout_s + _HTTP_TIMEOUT_GRACE_S
        )

    def _remember(self, url: str, card: AgentCard) -> _Agent:
        try:
            client = keeping_connections(self._factory.create(card))
        except ValueError as exc:
            raise AgentCallError(
                f"agent at {url} offers no transport flowledger speaks (JSON-RPC): {exc}",
                retryable=False,
                kind="card",
            ) from exc
        agent = _Agent(client, card)
        self._agents[url] = agent
        return agent

    async def _agent(self, url: str, auth: AgentAuth, timeout_s: float) -> _Agent:
        if self._closed:
            raise RuntimeError("AgentClient is closed")
        agent = self._agents.get(url)
        if agent is not None:
            return agent
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            agent = self._agents.get(url)
            if agent is None:
                agent = self._remember(url, await self._resolve_card(url, auth, timeout_s))
            return agent

    def forget(self, base_url: str) -> None:
        """Drop the cached card of an agent (it is fetched again on the next call)."""
        self._agents.pop(base_url.strip(), None)

    # --- calls ---------------------------------------------------------------------------

    async def send(
        self,
        base_url: str,
        input: Mapping[str, Any],
        *,
        auth: AgentAuth,
        timeout_s: float,
        on_task: Callable[[str], Awaitable[None]] | None = None,
        message_id: str | None = None,
        context_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AgentReply:
        """Send ``input`` to the agent and wait, at most ``timeout_s`` in all, for its reply.

        ``on_task(task_id)`` is awaited once, as soon as the agent's task id is known.
        ``message_id`` (default: a new UUID) and ``context_id`` go into the A2A Message.
        ``headers`` go with every request of the call, after the credentials' (the caller's
        trace: ``traceparent``).
        """
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        url = _normalize_url(base_url)
        request = _request(input, message_id=message_id, context_id=context_id)
        tracker = Tracker()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                await self._call(
                    url=url,
                    request=request,
                    auth=auth,
                    tracker=tracker,
                    on_task=on_task,
                    deadline=deadline,
                    headers=headers or {},
                )
        except TimeoutError:
            if tracker.task_id and self._cancel_on_timeout:
                await self._cancel_quietly(url, tracker.task_id, auth)
            raise AgentCallError(
                f"agent at {url} did not answer within {timeout_s:g} s",
                retryable=True,
                kind="timeout",
                task_id=tracker.task_id,
                state=state_name(tracker.state) if tracker.state is not None else None,
            ) from None
        except _CallbackError as exc:
            raise exc.original from None
        except AgentCallError as exc:
            if exc.kind == "network":
                self._agents.pop(url, None)  # it may come back elsewhere: re-read the card
            if exc.task_id is None:
                exc.task_id = tracker.task_id
            if exc.kind == "timeout" and tracker.task_id and self._cancel_on_timeout:
                await self._cancel_quietly(url, tracker.task_id, auth)
            raise
        return final_reply(url, tracker)

    async def _call(
        self,
        *,
        url: str,
        request: SendMessageRequest,
        auth: AgentAuth,
        tracker: Tracker,
        on_task: Callable[[str], Awaitable[None]] | None,
        deadline: float,
        headers: Mapping[str, str],
    ) -> None:
        loop = asyncio.get_running_loop()
        agent = await self._agent(url, auth, max(deadline - loop.time(), 0.001))
        streaming = agent.card.capabilities.streaming
        if not streaming:
            # Without streaming, have the agent answer as soon as the Task exists; then poll.
            request.configuration.return_immediately = True
        context = _context(auth, deadline - loop.time() + _HTTP_TIMEOUT_GRACE_S, headers)
        notified = False

        async def notify() -> None:
            nonlocal notified
            if on_task is not None and not notified and tracker.task_id:
                notified = True
                try:
                    await on_task(tracker.task_id)
                except Exception as exc:
                    raise _CallbackError(exc) from exc

        try:
            stream = cast(
                AsyncGenerator[StreamResponse, None],
                agent.client.send_message(request, context=context),
            )
            async with contextlib.aclosing(stream):
                async for event in stream:
                    tracker.apply(event)
                    await notify()
                    if tracker.final:
                        break
        except _CallbackError:
            raise
        except Exception as exc:
            error = call_error(exc, url, f"send a message to the agent at {url}")
            # A dropped stream is not the end of the task: read it back below.
            if not (streaming and error.kind == "network" and tracker.task_id):
                raise error from exc
            logger.warning("stream from %s broke (%s); polling task", url, error.message)
        if tracker.final:
            return
        if tracker.task_id is None:
            raise AgentCallError(
                f"agent at {url} ended the call without a task or a message",
                retryable=False,
                kind="protocol",
            )
        await self._poll(agent, url, auth, tracker, deadline, headers)

    async def _poll(
        self,
        agent: _Agent,
        url: str,
        auth: AgentAuth,
        tracker: Tracker,
        deadline: float,
        headers: Mapping[str, str],
    ) -> None:
        loop = asyncio.get_running_loop()
        interval = self._poll_interval_s
        first = True
        while not tracker.final:
            if not first:
                await asyncio.sleep(interval)
                interval = min(interval * 1.5, self._max_poll_interval_s)
            first = False
            task_id = cast(str, tracker.task_id)
            try:
                task = await agent.client.get_task(
                    GetTaskRequest(id=task_id),
                    context=_context(auth, deadline - loop.time() + _HTTP_TIMEOUT_GRACE_S, headers),
                )
            except Exception as exc:
                raise call_error(exc, url, f"read task {task_id} from the agent at {url}") from exc
            tracker.apply_task(task)

    async def get_task(
        self, base_url: str, task_id: str, *, auth: AgentAuth, timeout_s: float
    ) -> AgentReply:
        """Read a task back (e.g. after a restart), with the same contract as :meth:`send`.

        A task that is still running gives an ``AgentReply`` with ``output=None`` and its
        state (``"submitted"``, ``"working"``); a finished one gives the reply or raises.
        """
        url = _normalize_url(base_url)
        tracker = Tracker()
        try:
            async with asyncio.timeout(timeout_s):
                agent = await self._agent(url, auth, timeout_s)
                try:
                    task = await agent.client.get_task(
                        GetTaskRequest(id=task_id),
                        context=_context(auth, timeout_s + _HTTP_TIMEOUT_GRACE_S),
                    )
                except Exception as exc:
                    raise call_error(
                        exc, url, f"read task {task_id} from the agent at {url}"
                    ) from exc
        except TimeoutError:
            raise AgentCallError(
                f"agent at {url} did not return task {task_id} within {timeout_s:g} s",
                retryable=True,
                kind="timeout",
                task_id=task_id,
            ) from None
        tracker.apply_task(task)
        if not tracker.final:
            state = state_name(tracker.state) if tracker.state is not None else None
            return AgentReply(None, tracker.task_id, tracker.context_id, state)
        return final_reply(url, tracker)

    async def cancel(
        self, base_url: str, task_id: str, *, auth: AgentAuth, timeout_s: float
    ) -> None:
        """Ask the agent to cancel ``task_id`` (A2A ``CancelTask``).

        Cancelling a task that has already finished is not an error (A2A answers
        ``TaskNotCancelable``; that is swallowed). An unknown task raises.
        """
        url = _normalize_url(base_url)
        try:
            async with asyncio.timeout(timeout_s):
                agent = await self._agent(url, auth, timeout_s)
                try:
                    await agent.client.cancel_task(
                        CancelTaskRequest(id=task_id),
                        context=_context(auth, timeout_s + _HTTP_TIMEOUT_GRACE_S),
                    )
                except TaskNotCancelableError:
                    logger.info("task %s at %s already finished; nothing to cancel", task_id, url)
                except Exception as exc:
                    raise call_error(
                        exc, url, f"cancel task {task_id} on the agent at {url}"
                    ) from exc
        except TimeoutError:
            raise AgentCallError(
                f"agent at {url} did not confirm cancelling {task_id} within {timeout_s:g} s",
                retryable=True,
                kind="timeout",
                task_id=task_id,
            ) from None

    async def _cancel_quietly(self, url: str, task_id: str, auth: AgentAuth) -> None:
        try:
            await self.cancel(url, task_id, auth=auth, timeout_s=_CANCEL_ON_TIMEOUT_S)
        except Exception as exc:  # best effort: the timeout is what the caller hears about
            logger.warning("could not cancel task %s at %s after a timeout: %s", task_id, url, exc)


async def fetch_agent_card(
    base_url: str, *, timeout_s: float, auth: AgentAuth | None = None
) -> AgentCardInfo:
    """Fetch and summarise an agent's card with a throw-away client."""
    async with AgentClient() as client:
        return await client.fetch_agent_card(base_url, timeout_s=timeout_s, auth=auth)


# --- helpers ---------------------------------------------------------------------------


def _request(
    input: Mapping[str, Any],
    *,
    message_id: str | None,
    context_id: str | None,
) -> SendMessageRequest:
    if not isinstance(input, Mapping):
        raise AgentCallError(
            f"step input must be a JSON object, not {type(input).__name__}",
            retryable=False,
            kind="input",
        )
    try:
        part = new_data_part(dict(input))
    except Exception as exc:  # protobuf's ParseError / TypeError for non-JSON values
        raise AgentCallError(
            f"step input is not JSON: {exc}", retryable=False, kind="input"
        ) from exc
    message = Message(
        role=Role.ROLE_USER,
        message_id=message_id or str(uuid.uuid4()),
        context_id=context_id or "",
        parts=[part],
    )
    return SendMessageRequest(message=message)


def _context(
    auth: AgentAuth, timeout_s: float, headers: Mapping[str, str] | None = None
) -> ClientCallContext:
    # service_parameters become HTTP headers of the request (a2a-sdk's get_http_args);
    # timeout becomes the httpx timeout of each HTTP request of the call.
    return ClientCallContext(
        timeout=max(timeout_s, 0.001),
        service_parameters={**(headers or {}), **auth.headers()} or None,
    )


def _normalize_url(base_url: str) -> str:
    url = base_url.strip()
    if not url.startswith(("http://", "https://")):
        raise AgentCallError(
            f"agent URL {base_url!r} must start with http:// or https://",
            retryable=False,
            kind="input",
        )
    return url
