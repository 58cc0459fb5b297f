"""The A2A client the executor uses to call agents, built on a2a-sdk's client.

One :class:`AgentClient` serves every agent: it keeps one ``httpx.AsyncClient`` and, per agent
base URL, the resolved agent card and the a2a-sdk ``Client`` made from it
(``ClientFactory(ClientConfig(httpx_client=...)).create(card)``, JSON-RPC binding).

How :meth:`AgentClient.send` talks to an agent
==============================================

The step input goes out as ONE A2A data part (a JSON object) in a ``SendMessageRequest``.

* If the agent card advertises ``capabilities.streaming`` the call uses
  ``SendStreamingMessage`` (SSE). An agent working as a Task sends the Task (or a status
  update naming it) as its first event, so the task id is known - and ``on_task`` is called -
  while the agent is still working. That is what makes :meth:`AgentClient.cancel` possible
  during the call. The stream is read until the task reaches a terminal or interrupted state.
  If the stream ends early (the connection dropped, or the server closed it after a cancel
  without sending the final state - a2a-sdk documents that this can happen), the task is
  read back with ``GetTask``, polling until it is final.
* Otherwise it uses ``SendMessage`` with ``return_immediately`` so the agent answers with the
  Task as soon as it exists; ``on_task`` is called then and ``GetTask`` is polled until the
  task is final.
* An agent may also answer with a direct Message instead of a Task: then there is no task id,
  ``on_task`` is not called and ``AgentReply.state`` is ``None``.

Reply contract (``AgentReply.output``)
--------------------------------------

The parts of the reply - the artifacts of the completed Task in order (or, without artifacts,
its final status message), or the parts of the direct Message - become ``output``:

* exactly one part -> that part's value: a data part's JSON value, a text part as
  ``{"text": ...}``;
* only text parts -> ``{"text": "<the texts joined by newlines>"}``;
* several parts -> a list with each part's value (url/raw parts become
  ``{"url": ..., "media_type": ..., "filename": ...}`` / ``{"raw_base64": ..., ...}``);
* no parts -> ``None``.

A2A carries data parts as ``google.protobuf.Value``, which stores every number as a double;
whole numbers are turned back into ints (``3.0`` -> ``3``). Object key order is not preserved
by the transport.

Errors
------

Everything that goes wrong is an :class:`AgentCallError` with ``retryable`` and ``kind``:

========================  =========  ======================================================
what                      retryable  kind
========================  =========  ======================================================
deadline passed           yes        ``timeout`` (the agent's task is cancelled, best effort)
cannot connect / reset    yes        ``network``
HTTP 408/425/429/5xx      yes        ``http``
other HTTP 4xx (401...)   no         ``http``
JSON-RPC internal error   yes        ``rpc`` (-32603)
other JSON-RPC errors     no         ``rpc``
task ``failed``           yes [*]_   ``task_failed``
task ``rejected``         no [*]_    ``task_rejected``
task ``canceled``         no         ``task_canceled`` (raised as :class:`AgentCallCancelled`)
input/auth required       no         ``input_required`` (flowledger cannot converse)
malformed reply / card    no         ``protocol`` / ``card``
input not JSON            no         ``input``
========================  =========  ======================================================

.. [*] unless the agent says otherwise: a boolean ``retryable`` in the metadata of the final
   status message (or of the task) overrides the default.

:class:`AgentCallCancelled` subclasses :class:`AgentCallError`; catch it first. Exceptions
raised by the ``on_task`` callback propagate unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import httpx
from a2a.client import (
    A2ACardResolver,
    A2AClientError,
    A2AClientTimeoutError,
    AgentCardResolutionError,
    Client,
    ClientCallContext,
    ClientConfig,
    ClientFactory,
)
from a2a.helpers import new_data_part
from a2a.types import (
    AgentCard,
    Artifact,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, TransportProtocol
from a2a.utils.errors import (
    JSON_RPC_ERROR_CODE_MAP,
    A2AError,
    InternalError,
    TaskNotCancelableError,
)

__all__ = [
    "AgentAuth",
    "AgentCallCancelled",
    "AgentCallError",
    "AgentCardInfo",
    "AgentClient",
    "AgentReply",
    "ErrorKind",
    "fetch_agent_card",
]

logger = logging.getLogger(__name__)

AuthKind = Literal["none", "bearer", "apikey"]
ErrorKind = Literal[
    "timeout",
    "network",
    "http",
    "rpc",
    "task_failed",
    "task_rejected",
    "task_canceled",
    "input_required",
    "protocol",
    "card",
    "input",
]

DEFAULT_APIKEY_HEADER: Final = "X-API-Key"
LEGACY_AGENT_CARD_PATH: Final = "/.well-known/agent.json"
_TERMINAL: Final = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)
_INTERRUPTED: Final = frozenset(
    {TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED}
)
_RETRYABLE_HTTP: Final = frozenset({408, 425, 429})
_RPC_CODE_IN_MESSAGE = re.compile(r"JSON-RPC Error (-?\d+)")
_MAX_SAFE_INT: Final = 2**53
_CANCEL_ON_TIMEOUT_S: Final = 2.0
# httpx gets a little more time than the call's deadline so the deadline (asyncio.timeout)
# always fires first and a timeout is reported - and handled - one way only.
_HTTP_TIMEOUT_GRACE_S: Final = 1.0


@dataclass(frozen=True)
class AgentAuth:
    """How to authenticate to an agent: the HTTP header sent with every A2A request.

    ``bearer`` sends ``Authorization: Bearer <token>``; ``apikey`` sends ``<header>: <token>``.
    The secret is kept out of ``repr``.
    """

    kind: AuthKind = "none"
    token: str | None = field(default=None, repr=False)
    header: str = DEFAULT_APIKEY_HEADER

    def __post_init__(self) -> None:
        if self.kind not in ("none", "bearer", "apikey"):
            raise ValueError(f"unknown auth kind {self.kind!r}")
        if self.kind != "none" and not self.token:
            raise ValueError(f"{self.kind} auth needs a token")
        if self.kind == "apikey" and not self.header:
            raise ValueError("apikey auth needs a header name")

    @classmethod
    def none(cls) -> AgentAuth:
        return cls("none")

    @classmethod
    def bearer(cls, token: str) -> AgentAuth:
        return cls("bearer", token)

    @classmethod
    def apikey(cls, key: str, header: str = DEFAULT_APIKEY_HEADER) -> AgentAuth:
        return cls("apikey", key, header)

    @classmethod
    def from_config(cls, auth_type: str, auth_config: Mapping[str, Any] | None) -> AgentAuth:
        """From an agent's registered ``auth_type`` and ``auth_config`` (``token``/``key``,
        ``header``), as stored by ``flowledger.domain.agents``."""
        config = auth_config or {}
        if auth_type == "bearer":
            return cls.bearer(str(config.get("token") or ""))
        if auth_type == "apikey":
            return cls.apikey(
                str(config.get("key") or ""), str(config.get("header") or DEFAULT_APIKEY_HEADER)
            )
        if auth_type == "none":
            return cls.none()
        raise ValueError(f"unknown auth type {auth_type!r}")

    def headers(self) -> dict[str, str]:
        if self.kind == "bearer" and self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.kind == "apikey" and self.token:
            return {self.header: self.token}
        return {}


_NO_AUTH: Final = AgentAuth()


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


@dataclass(frozen=True)
class AgentReply:
    """A successful agent call. ``state`` is the final task state (``"completed"``), or
    ``None`` when the agent answered with a direct Message (then ``task_id`` is ``None``)."""

    output: Any
    task_id: str | None
    context_id: str | None
    state: str | None


class AgentCallError(Exception):
    """An agent call that did not produce a reply; ``retryable`` says if trying again may help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        kind: ErrorKind,
        status_code: int | None = None,
        rpc_code: int | None = None,
        task_id: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.kind: ErrorKind = kind
        self.status_code = status_code
        self.rpc_code = rpc_code
        self.task_id = task_id
        self.state = state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, kind={self.kind!r}, "
            f"retryable={self.retryable!r}, task_id={self.task_id!r})"
        )


class AgentCallCancelled(AgentCallError):
    """The agent's task ended ``canceled`` (usually because flowledger cancelled it)."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(
            message, retryable=False, kind="task_canceled", task_id=task_id, state="canceled"
        )


class _CallbackError(Exception):
    """Carries an exception raised by ``on_task`` past the error mapping."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def state_name(state: TaskState) -> str:
    """``TASK_STATE_INPUT_REQUIRED`` -> ``"input_required"``."""
    try:
        name = str(TaskState.Name(state))
    except ValueError:
        return f"unknown({int(state)})"
    return name.removeprefix("TASK_STATE_").lower()


# --- values and parts ------------------------------------------------------------------


def _number(number: float) -> int | float:
    """Whole doubles back to ints (protobuf's ``Value`` stores every number as a double)."""
    if math.isfinite(number) and number.is_integer() and abs(number) <= _MAX_SAFE_INT:
        return int(number)
    return number


def _python_value(value: Any) -> Any:
    """A ``google.protobuf.Value`` as plain Python, whole numbers as ints."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {key: _python_value(item) for key, item in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_python_value(item) for item in value.list_value.values]
    if kind == "number_value":
        return _number(float(value.number_value))
    if kind in ("string_value", "bool_value"):
        return getattr(value, kind)
    return None  # null_value, or no value at all


def _part_value(part: Part) -> Any:
    kind = part.WhichOneof("content")
    if kind == "data":
        return _python_value(part.data)
    if kind == "text":
        return {"text": part.text}
    described = {"media_type": part.media_type or None, "filename": part.filename or None}
    if kind == "url":
        return {"url": part.url, **described}
    if kind == "raw":
        return {"raw_base64": base64.b64encode(part.raw).decode("ascii"), **described}
    return None


def parts_to_output(parts: Sequence[Part]) -> Any:
    """The reply contract: see the module docstring."""
    if not parts:
        return None
    if all(part.WhichOneof("content") == "text" for part in parts):
        return {"text": "\n".join(part.text for part in parts)}
    values = [_part_value(part) for part in parts]
    return values[0] if len(values) == 1 else values


def _metadata_retryable(*messages: Any) -> bool | None:
    for holder in messages:
        if holder is None:
            continue
        fields = holder.metadata.fields
        if "retryable" in fields:
            flag = _python_value(fields["retryable"])
            if isinstance(flag, bool):
                return flag
    return None


def _message_text(message: Message | None) -> str:
    if message is None:
        return ""
    texts = [part.text for part in message.parts if part.WhichOneof("content") == "text"]
    if texts:
        return " ".join(text.strip() for text in texts if text.strip())
    data = [_python_value(part.data) for part in message.parts if part.HasField("data")]
    return str(data[0]) if len(data) == 1 else (str(data) if data else "")


# --- following one call ----------------------------------------------------------------


class _Tracker:
    """What is known of the task (or message) answering one call."""

    def __init__(self) -> None:
        self.task_id: str | None = None
        self.context_id: str | None = None
        self.state: TaskState | None = None
        self.status_message: Message | None = None
        self.task_with_metadata: Task | None = None
        self.artifacts: dict[str, Artifact] = {}
        self.message: Message | None = None

    @property
    def final(self) -> bool:
        return self.message is not None or (
            self.state is not None and (self.state in _TERMINAL or self.state in _INTERRUPTED)
        )

    def _claim(self, task_id: str, context_id: str) -> bool:
        if not task_id:
            return False
        if self.task_id is None:
            self.task_id = task_id
        if task_id != self.task_id:
            logger.warning("ignoring event for task %s (following %s)", task_id, self.task_id)
            return False
        if context_id:
            self.context_id = context_id
        return True

    def apply_task(self, task: Task) -> None:
        if not self._claim(task.id, task.context_id):
            return
        self.state = task.status.state
        self.status_message = task.status.message if task.status.HasField("message") else None
        self.task_with_metadata = task if task.HasField("metadata") else None
        if task.artifacts:
            self.artifacts = {}
            for artifact in task.artifacts:
                self._merge_artifact(artifact, append=False)

    def apply(self, event: StreamResponse) -> None:
        kind = event.WhichOneof("payload")
        if kind == "task":
            self.apply_task(event.task)
        elif kind == "message":
            self.message = event.message
            if event.message.context_id:
                self.context_id = event.message.context_id
        elif kind == "status_update":
            update = event.status_update
            if self._claim(update.task_id, update.context_id):
                self.state = update.status.state
                has_message = update.status.HasField("message")
                self.status_message = update.status.message if has_message else None
        elif kind == "artifact_update":
            update_a = event.artifact_update
            if self._claim(update_a.task_id, update_a.context_id):
                self._merge_artifact(update_a.artifact, append=update_a.append)

    def _merge_artifact(self, artifact: Artifact, *, append: bool) -> None:
        key = artifact.artifact_id or f"#{len(self.artifacts)}"
        existing = self.artifacts.get(key)
        if not append or existing is None:
            copy = Artifact()
            copy.CopyFrom(artifact)
            self.artifacts[key] = copy
            return
        new_parts = list(artifact.parts)
        # Streamed text arrives as appended chunks of one text part: join them.
        if (
            new_parts
            and existing.parts
            and existing.parts[-1].WhichOneof("content") == "text"
            and new_parts[0].WhichOneof("content") == "text"
        ):
            existing.parts[-1].text += new_parts.pop(0).text
        existing.parts.extend(new_parts)

    def reply_parts(self) -> list[Part]:
        if self.message is not None:
            return list(self.message.parts)
        parts = [part for artifact in self.artifacts.values() for part in artifact.parts]
        if not parts and self.status_message is not None:
            parts = list(self.status_message.parts)
        return parts


@dataclass
class _Agent:
    client: Client
    card: AgentCard


def _normalize_url(base_url: str) -> str:
    url = base_url.strip()
    if not url.startswith(("http://", "https://")):
        raise AgentCallError(
            f"agent URL {base_url!r} must start with http:// or https://",
            retryable=False,
            kind="input",
        )
    return url


def _is_card_url(url: str) -> bool:
    return url.rstrip("/").endswith(".json")


class AgentClient:
    """Calls A2A agents. Reuse one instance; close it with :meth:`aclose` (or ``async with``).

    ``cancel_on_timeout``: when :meth:`send` gives up at its deadline and the task id is
    known, ask the agent to cancel the task (best effort, at most 2 s) so it stops working.
    ``http_client``: use this httpx client (not closed by :meth:`aclose`) instead of an own one
    with ``max_connections`` connections. A streaming call holds one connection until it ends.
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
        self._http = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
            headers={"User-Agent": "flowledger-agent-client"},
        )
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
                card = await self._resolve_card(url, auth or _NO_AUTH, timeout_s)
        except TimeoutError:
            raise AgentCallError(
                f"agent card at {url} did not arrive within {timeout_s:g} s",
                retryable=True,
                kind="timeout",
            ) from None
        latency_ms = (time.perf_counter() - started) * 1000
        self._remember(url, card)
        interfaces = list(card.supported_interfaces)
        jsonrpc = [i for i in interfaces if i.protocol_binding == TransportProtocol.JSONRPC.value]
        interface = (jsonrpc or interfaces or [None])[0]
        return AgentCardInfo(
            name=card.name,
            version=card.version,
            description=card.description,
            latency_ms=round(latency_ms, 3),
            url=interface.url if interface else "",
            streaming=card.capabilities.streaming,
            protocol_version=interface.protocol_version if interface else "",
            skills=tuple(skill.name or skill.id for skill in card.skills),
        )

    async def _resolve_card(self, url: str, auth: AgentAuth, timeout_s: float) -> AgentCard:
        kwargs: dict[str, Any] = {
            "headers": auth.headers(),
            "timeout": timeout_s + _HTTP_TIMEOUT_GRACE_S,
        }
        if _is_card_url(url):
            resolver = A2ACardResolver(self._http, url, agent_card_path="")
            paths: list[str | None] = [None]
        else:
            resolver = A2ACardResolver(self._http, url)
            paths = [AGENT_CARD_WELL_KNOWN_PATH, LEGACY_AGENT_CARD_PATH]
        for path in paths:
            try:
                return await resolver.get_agent_card(relative_card_path=path, http_kwargs=kwargs)
            except AgentCardResolutionError as exc:
                if exc.status_code == 404 and path != paths[-1]:
                    continue  # an older agent may serve the card at the legacy path
                raise _card_error(exc, url) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _remember(self, url: str, card: AgentCard) -> _Agent:
        try:
            client = self._factory.create(card)
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
    ) -> AgentReply:
        """Send ``input`` to the agent and wait, at most ``timeout_s`` in all, for its reply.

        ``on_task(task_id)`` is awaited once, as soon as the agent's task id is known.
        ``message_id`` (default: a new UUID) and ``context_id`` go into the A2A Message.
        """
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        url = _normalize_url(base_url)
        request = _request(input, message_id=message_id, context_id=context_id)
        tracker = _Tracker()
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
        return _reply(url, tracker)

    async def _call(
        self,
        *,
        url: str,
        request: SendMessageRequest,
        auth: AgentAuth,
        tracker: _Tracker,
        on_task: Callable[[str], Awaitable[None]] | None,
        deadline: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        agent = await self._agent(url, auth, max(deadline - loop.time(), 0.001))
        streaming = agent.card.capabilities.streaming
        if not streaming:
            # Without streaming, have the agent answer as soon as the Task exists; then poll.
            request.configuration.return_immediately = True
        context = _context(auth, deadline - loop.time() + _HTTP_TIMEOUT_GRACE_S)
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
            error = _call_error(exc, url, f"send a message to the agent at {url}")
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
        await self._poll(agent, url, auth, tracker, deadline)

    async def _poll(
        self, agent: _Agent, url: str, auth: AgentAuth, tracker: _Tracker, deadline: float
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
                    context=_context(auth, deadline - loop.time() + _HTTP_TIMEOUT_GRACE_S),
                )
            except Exception as exc:
                raise _call_error(exc, url, f"read task {task_id} from the agent at {url}") from exc
            tracker.apply_task(task)

    async def get_task(
        self, base_url: str, task_id: str, *, auth: AgentAuth, timeout_s: float
    ) -> AgentReply:
        """Read a task back (e.g. after a restart), with the same contract as :meth:`send`.

        A task that is still running gives an ``AgentReply`` with ``output=None`` and its
        state (``"submitted"``, ``"working"``); a finished one gives the reply or raises.
        """
        url = _normalize_url(base_url)
        tracker = _Tracker()
        try:
            async with asyncio.timeout(timeout_s):
                agent = await self._agent(url, auth, timeout_s)
                try:
                    task = await agent.client.get_task(
                        GetTaskRequest(id=task_id),
                        context=_context(auth, timeout_s + _HTTP_TIMEOUT_GRACE_S),
                    )
                except Exception as exc:
                    raise _call_error(
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
        return _reply(url, tracker)

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
                    raise _call_error(
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


def _context(auth: AgentAuth, timeout_s: float) -> ClientCallContext:
    # service_parameters become HTTP headers of the request (a2a-sdk's get_http_args);
    # timeout becomes the httpx timeout of each HTTP request of the call.
    return ClientCallContext(
        timeout=max(timeout_s, 0.001), service_parameters=auth.headers() or None
    )


def _reply(url: str, tracker: _Tracker) -> AgentReply:
    task_id = tracker.task_id
    if tracker.message is not None:
        return AgentReply(
            parts_to_output(tracker.reply_parts()),
            tracker.message.task_id or task_id,
            tracker.context_id,
            None,
        )
    state = cast(TaskState, tracker.state)
    name = state_name(state)
    said = _message_text(tracker.status_message)
    detail = f": {said}" if said else ""
    hint = _metadata_retryable(tracker.status_message, tracker.task_with_metadata)
    if state == TaskState.TASK_STATE_COMPLETED:
        return AgentReply(parts_to_output(tracker.reply_parts()), task_id, tracker.context_id, name)
    if state == TaskState.TASK_STATE_CANCELED:
        raise AgentCallCancelled(
            f"agent task {task_id} at {url} was canceled{detail}", task_id=task_id
        )
    if state == TaskState.TASK_STATE_FAILED:
        raise AgentCallError(
            f"agent task {task_id} at {url} failed{detail}",
            retryable=True if hint is None else hint,
            kind="task_failed",
            task_id=task_id,
            state=name,
        )
    if state == TaskState.TASK_STATE_REJECTED:
        raise AgentCallError(
            f"agent at {url} rejected task {task_id}{detail}",
            retryable=False if hint is None else hint,
            kind="task_rejected",
            task_id=task_id,
            state=name,
        )
    raise AgentCallError(
        f"agent task {task_id} at {url} stopped in state {name}{detail}; "
        "flowledger cannot supply further input",
        retryable=False,
        kind="input_required",
        task_id=task_id,
        state=name,
    )


def _body_snippet(response: httpx.Response) -> str:
    try:
        text = response.text.strip()
    except httpx.ResponseNotRead:
        return ""
    return f" - {text[:200]}" if text else ""


def _http_error(exc: httpx.HTTPStatusError, action: str) -> AgentCallError:
    status = exc.response.status_code
    reason = exc.response.reason_phrase or ""
    return AgentCallError(
        f"could not {action}: HTTP {status} {reason}".rstrip() + _body_snippet(exc.response),
        retryable=status in _RETRYABLE_HTTP or status >= 500,
        kind="http",
        status_code=status,
    )


def _transport_error(cause: BaseException | None, action: str) -> AgentCallError | None:
    """The error for an httpx failure underneath an a2a-sdk exception, if that is what it is."""
    if isinstance(cause, httpx.HTTPStatusError):
        return _http_error(cause, action)
    if isinstance(cause, httpx.TimeoutException):
        return AgentCallError(
            f"could not {action}: timed out ({type(cause).__name__})",
            retryable=True,
            kind="timeout",
        )
    if isinstance(cause, httpx.RequestError):
        what = str(cause) or type(cause).__name__
        if isinstance(cause, httpx.ConnectError):
            what = f"cannot connect ({what})"
        return AgentCallError(f"could not {action}: {what}", retryable=True, kind="network")
    return None


def _call_error(exc: BaseException, url: str, action: str) -> AgentCallError:
    """Map whatever a2a-sdk (or httpx below it) raised to an :class:`AgentCallError`."""
    if isinstance(exc, AgentCallError):
        return exc
    if isinstance(exc, A2AClientTimeoutError):
        return AgentCallError(f"could not {action}: timed out", retryable=True, kind="timeout")
    if isinstance(exc, httpx.HTTPError):
        mapped = _transport_error(exc, action)
        if mapped is not None:
            return mapped
    if isinstance(exc, A2AClientError):
        mapped = _transport_error(exc.__cause__, action)
        if mapped is not None:
            return mapped
        match = _RPC_CODE_IN_MESSAGE.search(exc.message)
        return AgentCallError(
            f"could not {action}: {exc.message}",
            retryable=False,
            kind="rpc" if match else "protocol",
            rpc_code=int(match.group(1)) if match else None,
        )
    if isinstance(exc, A2AError):  # a JSON-RPC error the agent answered with
        code = JSON_RPC_ERROR_CODE_MAP.get(type(exc))
        return AgentCallError(
            f"agent at {url} answered JSON-RPC error {code}: {exc.message}",
            retryable=isinstance(exc, InternalError),
            kind="rpc",
            rpc_code=code,
        )
    return AgentCallError(
        f"could not {action}: unexpected reply ({type(exc).__name__}: {exc})",
        retryable=False,
        kind="protocol",
    )


def _card_error(exc: AgentCardResolutionError, url: str) -> AgentCallError:
    mapped = _transport_error(exc.__cause__, f"fetch the agent card from {url}")
    if mapped is not None:
        if mapped.kind == "http" and mapped.status_code == 404:
            mapped.kind = "card"
            mapped.message = f"no agent card at {url} (HTTP 404)"
            mapped.args = (mapped.message,)
        return mapped
    return AgentCallError(
        f"agent card at {url} is not valid: {exc.message}", retryable=False, kind="card"
    )
