"""flowledger's A2A client against the real sample agents, each a server in a subprocess (and,
to see what reaches an agent, sample agents served in this process behind a middleware that
records it: :func:`served_agent`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from examples.agents import AGENT_VERSION
from examples.agents.common import AgentSettings, build_app
from examples.agents.echo import EchoAgent
from examples.agents.slow import SlowAgent
from examples.agents.transform import TransformAgent
from flowledger.a2a import (
    AgentAuth,
    AgentCallCancelled,
    AgentCallError,
    AgentClient,
    fetch_agent_card,
)
from tests.support.agents import aget_stats, areset_stats, running_agents, spawn
from tests.support.ports import free_port
from tests.support.server import serving_made

pytestmark = pytest.mark.integration

BEARER = "b3arer-t0ken"
API_KEY = "k3y-for-tests"
API_KEY_HEADER = "X-Agent-Key"
NO_AUTH = AgentAuth()


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, str]]:
    """All four agents in one process (consecutive ports) plus three specially configured ones,
    each in its own process; all started in parallel."""
    main = spawn("all", "--delay", "5")
    try:
        with running_agents(
            {
                "secure": ["echo", "--require-bearer", BEARER],
                "keyed": ["transform", "--require-api-key", API_KEY],
                "keyed_custom": [
                    "echo",
                    "--require-api-key",
                    API_KEY,
                    "--api-key-header",
                    API_KEY_HEADER,
                ],
                "polled_slow": ["slow", "--no-streaming", "--delay", "5"],
            }
        ) as extra:
            main.wait_ready()
            yield {**main.urls, **extra}
    finally:
        main.stop()


@pytest.fixture
async def client() -> AsyncIterator[AgentClient]:
    async with AgentClient() as agent_client:
        yield agent_client


async def test_echo_round_trips_a_data_part(agents: dict[str, str], client: AgentClient) -> None:
    payload = {"hello": "world", "n": 3, "ratio": 2.5, "nested": {"xs": [1, True, None, "a"]}}
    seen: list[str] = []

    async def on_task(task_id: str) -> None:
        seen.append(task_id)

    reply = await client.send(
        agents["echo"],
        payload,
        auth=NO_AUTH,
        timeout_s=10,
        on_task=on_task,
        message_id="msg-echo-1",
    )

    assert reply.output == payload
    assert isinstance(reply.output["n"], int)  # not 3.0: numbers survive protobuf's doubles
    # echo answers with a direct Message: no task
    assert reply.task_id is None
    assert reply.state is None
    assert reply.context_id
    assert seen == []
    stats = await aget_stats(agents["echo"])
    assert stats["last_message_id"] == "msg-echo-1"
    assert stats["last_input"] == payload


async def test_echo_accepts_a_text_part(agents: dict[str, str]) -> None:
    # Not through AgentClient (which always sends a data part): a plain A2A v0.3 JSON-RPC
    # call with a text part, which the agents also accept.
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "message/send",
        "params": {
            "message": {
                "kind": "message",
                "messageId": "m-text",
                "role": "user",
                "parts": [{"kind": "text", "text": "just words"}],
            }
        },
    }
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(agents["echo"], json=body)
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["parts"][0]["data"] == {"text": "just words"}


async def test_transform_output(agents: dict[str, str], client: AgentClient) -> None:
    seen: list[str] = []

    async def on_task(task_id: str) -> None:
        seen.append(task_id)

    reply = await client.send(
        agents["transform"],
        {"text": "hello big world", "tags": ["a", "b"], "n": 1},
        auth=NO_AUTH,
        timeout_s=10,
        on_task=on_task,
    )

    assert reply.output == {
        "text": "HELLO BIG WORLD",
        "tags": ["A", "B"],
        "n": 1,
        "length": 15,
        "word_count": 3,
    }
    assert reply.state == "completed"
    assert reply.task_id
    assert seen == [reply.task_id]

    again = await client.get_task(agents["transform"], reply.task_id, auth=NO_AUTH, timeout_s=5)
    assert again == reply


async def test_concurrent_calls_share_one_client(
    agents: dict[str, str], client: AgentClient
) -> None:
    replies = await asyncio.gather(
        *(
            client.send(agents["transform"], {"text": f"call {i}"}, auth=NO_AUTH, timeout_s=10)
            for i in range(8)
        )
    )
    assert [reply.output["text"] for reply in replies] == [f"CALL {i}" for i in range(8)]
    assert len({reply.task_id for reply in replies}) == 8


class RecordsClients:
    """ASGI middleware: the client address (host, port) of every POST, one port per TCP
    connection the agent was called over."""

    def __init__(self, app: ASGIApp, clients: list[tuple[str, int]]) -> None:
        self.app, self.clients = app, clients

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.clients.append(tuple(scope["client"]))
        await self.app(scope, receive, send)


class EndsLate:
    """ASGI middleware: every answer ends a moment after its last part (a stream closed a
    little after its final event)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def late(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                await asyncio.sleep(0.05)
            await send(message)

        await self.app(scope, receive, late)


@contextlib.contextmanager
def served_agent(kind: str, wrap: Callable[[ASGIApp], ASGIApp]) -> Iterator[str]:
    """A real sample agent (``echo`` or ``transform``: its a2a-sdk app, its card naming its
    URL) on 127.0.0.1, behind ``wrap``; yields its URL."""
    agent = {"echo": EchoAgent, "transform": TransformAgent}[kind]

    def make(url: str) -> ASGIApp:
        return wrap(build_app(agent(AgentSettings(kind=kind, public_url=f"{url}/"))))

    with serving_made(make) as url:
        yield url


@contextlib.contextmanager
def counted(agent: str, *, ends_late: bool = False) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """:func:`served_agent`, its answers ending a moment late if ``ends_late``; yields its URL
    and the client address of every call it answered."""
    clients: list[tuple[str, int]] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        return RecordsClients(EndsLate(app) if ends_late else app, clients)

    with served_agent(agent, wrap) as url:
        yield url, clients


@pytest.mark.parametrize("ends_late", [False, True], ids=["stream-ends-at-once", "ends-late"])
@pytest.mark.parametrize("agent", ["echo", "transform"])
async def test_calls_one_after_another_reuse_one_connection(agent: str, ends_late: bool) -> None:
    """a2a-sdk stops reading a stream at its final event; unread, the response closed its
    connection and every call opened a new one (``flowledger/a2a/draining.py``), unless the
    stream had ended with it."""
    with counted(agent, ends_late=ends_late) as (url, clients):
        async with AgentClient() as client:
            for n in range(5):
                reply = await client.send(url, {"text": f"call {n}"}, auth=NO_AUTH, timeout_s=10)
                assert reply.output
    assert len(clients) == 5
    assert len(set(clients)) == 1, f"{len(set(clients))} connections for 5 calls"


async def test_many_calls_at_once_keep_their_connections() -> None:
    """320 calls, 64 at a time, need at most 64 connections: httpx's one pool closed every
    connection that went idle while it held more than 20 in all, so each call opened its own
    (``flowledger/a2a/pools.py``)."""
    slots = asyncio.Semaphore(64)

    async def call(n: int) -> object:
        async with slots:
            reply = await client.send(url, {"n": n}, auth=NO_AUTH, timeout_s=10)
            return reply.output

    with counted("echo") as (url, clients):
        async with AgentClient(max_connections=64) as client:
            outputs = await asyncio.gather(*(call(n) for n in range(320)))
    assert outputs == [{"n": n} for n in range(320)]
    assert len(clients) == 320
    connections = len(set(clients))
    assert connections <= 64, f"{connections} connections for 320 calls, 64 at a time"


async def test_calls_beyond_the_connection_limit_wait_for_a_connection() -> None:
    with counted("echo") as (url, clients):
        async with AgentClient(max_connections=4) as client:
            replies = await asyncio.gather(
                *(client.send(url, {"n": n}, auth=NO_AUTH, timeout_s=10) for n in range(12))
            )
    assert [reply.output for reply in replies] == [{"n": n} for n in range(12)]
    assert len(clients) == 12
    assert len(set(clients)) <= 4


async def test_flaky_fails_n_times_then_succeeds(
    agents: dict[str, str], client: AgentClient
) -> None:
    url = agents["flaky"]
    await areset_stats(url, fail_first=2, fail_mode="task")

    for attempt in (1, 2):
        with pytest.raises(AgentCallError) as caught:
            await client.send(url, {"x": 1}, auth=NO_AUTH, timeout_s=10)
        error = caught.value
        assert not isinstance(error, AgentCallCancelled)
        assert error.kind == "task_failed"
        assert error.retryable is True
        assert error.state == "failed"
        assert error.task_id
        assert f"simulated failure {attempt} of 2" in str(error)
        assert (await aget_stats(url))["calls"] == attempt

    reply = await client.send(url, {"x": 1}, auth=NO_AUTH, timeout_s=10)
    assert reply.output == {"x": 1}
    assert reply.state == "completed"
    stats = await aget_stats(url)
    assert (stats["calls"], stats["failed"], stats["completed"]) == (3, 2, 1)

    await areset_stats(url, fail_first=0)
    assert (await aget_stats(url))["calls"] == 0


async def test_flaky_error_mode_is_a_retryable_jsonrpc_error(
    agents: dict[str, str], client: AgentClient
) -> None:
    url = agents["flaky"]
    await areset_stats(url, fail_first=1, fail_mode="error")
    try:
        with pytest.raises(AgentCallError) as caught:
            await client.send(url, {"x": 1}, auth=NO_AUTH, timeout_s=10)
        assert caught.value.kind == "rpc"
        assert caught.value.rpc_code == -32603
        assert caught.value.retryable is True
        assert "simulated failure 1 of 1" in str(caught.value)

        reply = await client.send(url, {"x": 2}, auth=NO_AUTH, timeout_s=10)
        assert reply.output == {"x": 2}
        assert (await aget_stats(url))["calls"] == 2
    finally:
        await areset_stats(url, fail_first=0, fail_mode="task")


@pytest.mark.parametrize("agent", ["slow", "polled_slow"])
async def test_cancel_mid_call(agents: dict[str, str], client: AgentClient, agent: str) -> None:
    """Streaming agent (task id from the first SSE event) and non-streaming one (task id from
    the immediate SendMessage answer, then polling) alike."""
    url = agents[agent]
    await areset_stats(url)
    task_known = asyncio.Event()
    task_ids: list[str] = []

    async def on_task(task_id: str) -> None:
        task_ids.append(task_id)
        task_known.set()

    started = time.monotonic()
    call = asyncio.create_task(
        client.send(url, {"delay_s": 20, "x": 1}, auth=NO_AUTH, timeout_s=30, on_task=on_task)
    )
    await asyncio.wait_for(task_known.wait(), 10)
    assert not call.done()
    await client.cancel(url, task_ids[0], auth=NO_AUTH, timeout_s=5)

    with pytest.raises(AgentCallCancelled) as caught:
        await asyncio.wait_for(call, 10)
    assert time.monotonic() - started < 10
    assert caught.value.task_id == task_ids[0]
    assert caught.value.retryable is False
    assert caught.value.kind == "task_canceled"
    stats = await aget_stats(url)
    assert (stats["calls"], stats["canceled"], stats["completed"]) == (1, 1, 0)

    # cancelling again (task already final) is fine; reading it back says canceled
    await client.cancel(url, task_ids[0], auth=NO_AUTH, timeout_s=5)
    with pytest.raises(AgentCallCancelled):
        await client.get_task(url, task_ids[0], auth=NO_AUTH, timeout_s=5)


async def test_timeout_is_retryable_and_cancels_the_task(
    agents: dict[str, str], client: AgentClient
) -> None:
    url = agents["slow"]
    await areset_stats(url)
    started = time.monotonic()
    with pytest.raises(AgentCallError) as caught:
        await client.send(url, {"delay_s": 10}, auth=NO_AUTH, timeout_s=0.75)
    assert time.monotonic() - started < 4
    error = caught.value
    assert error.kind == "timeout"
    assert error.retryable is True
    assert error.task_id
    assert "0.75 s" in str(error)
    # best effort: the client asked the agent to stop working on it
    assert (await aget_stats(url))["canceled"] == 1


async def test_bearer_auth(agents: dict[str, str], client: AgentClient) -> None:
    url = agents["secure"]

    # the card is public
    card = await client.fetch_agent_card(url, timeout_s=5)
    assert card.name == "echo"

    for auth in (NO_AUTH, AgentAuth.bearer("wrong"), AgentAuth.apikey(BEARER)):
        with pytest.raises(AgentCallError) as caught:
            await client.send(url, {"x": 1}, auth=auth, timeout_s=10)
        assert caught.value.kind == "http"
        assert caught.value.status_code == 401
        assert caught.value.retryable is False
        assert "401" in str(caught.value)
    assert (await aget_stats(url))["calls"] == 0

    reply = await client.send(url, {"x": 1}, auth=AgentAuth.bearer(BEARER), timeout_s=10)
    assert reply.output == {"x": 1}
    assert (await aget_stats(url))["calls"] == 1


async def test_api_key_auth(agents: dict[str, str], client: AgentClient) -> None:
    with pytest.raises(AgentCallError) as caught:
        await client.send(agents["keyed"], {"text": "a b"}, auth=NO_AUTH, timeout_s=10)
    assert caught.value.status_code == 401

    reply = await client.send(
        agents["keyed"], {"text": "a b"}, auth=AgentAuth.apikey(API_KEY), timeout_s=10
    )
    assert reply.output == {"text": "A B", "length": 3, "word_count": 2}

    custom = agents["keyed_custom"]
    with pytest.raises(AgentCallError) as caught:
        await client.send(custom, {"x": 1}, auth=AgentAuth.apikey(API_KEY), timeout_s=10)
    assert caught.value.status_code == 401
    auth = AgentAuth.from_config("apikey", {"key": API_KEY, "header": API_KEY_HEADER})
    reply = await client.send(custom, {"x": 1}, auth=auth, timeout_s=10)
    assert reply.output == {"x": 1}


async def test_fetch_agent_card(agents: dict[str, str]) -> None:
    info = await fetch_agent_card(agents["transform"], timeout_s=5)
    assert info.name == "transform"
    assert info.version == AGENT_VERSION
    assert info.description
    assert info.latency_ms > 0
    assert info.streaming is True
    assert info.url == agents["transform"]
    assert info.skills == ("Transform",)
    [contract] = info.contracts  # the skill schemas extension of its card
    assert contract.skill_id == "transform"
    assert contract.input_schema is not None and contract.input_schema["required"] == ["text"]
    assert contract.output_schema is not None
    assert sorted(contract.output_schema["properties"]) == ["length", "text", "word_count"]

    polled = await fetch_agent_card(agents["polled_slow"], timeout_s=5)
    assert (polled.name, polled.streaming, polled.contracts) == ("slow", False, ())


async def test_fetch_agent_card_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(AgentCallError) as caught:
        await fetch_agent_card(url, timeout_s=5)
    error = caught.value
    assert error.kind == "network"
    assert error.retryable is True
    assert url.rstrip("/") in str(error)
    assert "connect" in str(error).lower()


async def test_fetch_agent_card_not_an_agent(agents: dict[str, str]) -> None:
    url = agents["echo"] + "not-here/"
    with pytest.raises(AgentCallError) as caught:
        await fetch_agent_card(url, timeout_s=5)
    assert caught.value.kind == "card"
    assert caught.value.status_code == 404
    assert caught.value.retryable is False


async def test_send_to_unreachable_agent(client: AgentClient) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(AgentCallError) as caught:
        await client.send(url, {"x": 1}, auth=NO_AUTH, timeout_s=5)
    assert caught.value.kind == "network"
    assert caught.value.retryable is True


async def test_input_must_be_json(agents: dict[str, str], client: AgentClient) -> None:
    with pytest.raises(AgentCallError) as caught:
        await client.send(agents["echo"], {"when": object()}, auth=NO_AUTH, timeout_s=5)
    assert caught.value.kind == "input"
    assert caught.value.retryable is False


class SetsCookies:
    """ASGI middleware: every answer sets a cookie, and the ``Cookie`` header of every request
    is kept in ``seen``."""

    def __init__(self, app: ASGIApp, name: str, seen: list[str | None]) -> None:
        self.app, self.name, self.seen = app, name, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.seen.append(Headers(scope=scope).get("cookie"))

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = f"session={self.name}; Path=/".encode()
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        await self.app(scope, receive, with_cookie)


@contextlib.contextmanager
def cookie_setting_echoes(names: list[str]) -> Iterator[tuple[dict[str, str], list[str | None]]]:
    """Echo agents (:func:`served_agent`), one port each, whose every answer sets a cookie;
    yields their URLs and the ``Cookie`` headers they received."""
    seen: list[str | None] = []
    urls: dict[str, str] = {}

    def sets_cookie(name: str) -> Callable[[ASGIApp], ASGIApp]:
        return lambda app: SetsCookies(app, name, seen)

    with contextlib.ExitStack() as stack:
        for name in names:
            urls[name] = stack.enter_context(served_agent("echo", sets_cookie(name)))
        yield urls, seen


async def test_an_agents_cookie_goes_with_no_later_call(client: AgentClient) -> None:
    """One client calls every agent for every run: a cookie kept from one answer would go with
    other runs' calls, and to every agent on the same host (a cookie is not bound to a port)."""
    with cookie_setting_echoes(["first", "second"]) as (urls, seen):
        for name in ("first", "first", "second", "first"):
            reply = await client.send(urls[name], {"n": name}, auth=NO_AUTH, timeout_s=10)
            assert reply.output == {"n": name}
        await client.fetch_agent_card(urls["second"], timeout_s=10)
    assert len(seen) == 7  # two cards, four calls, one card again
    assert seen == [None] * len(seen)


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class RecordsTraces:
    """ASGI middleware: the ``traceparent`` header of every POST (each JSON-RPC request)."""

    def __init__(self, app: ASGIApp, seen: list[str | None]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.seen.append(Headers(scope=scope).get("traceparent"))
        await self.app(scope, receive, send)


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "polled"])
async def test_a_calls_headers_go_with_each_of_its_requests(
    client: AgentClient, streaming: bool
) -> None:
    """The executor passes its trace to the agent: the headers given to ``send`` go with the
    message (straight over aiohttp when streamed) and with every read of its task (polled),
    beside the credentials."""
    seen: list[str | None] = []

    def make(url: str) -> ASGIApp:
        settings = AgentSettings(
            kind="slow", public_url=f"{url}/", streaming=streaming, delay_s=0.3
        )
        return RecordsTraces(build_app(SlowAgent(settings)), seen)

    with serving_made(make) as url:
        reply = await client.send(
            f"{url}/",
            {"x": 1},
            auth=AgentAuth.bearer("unused"),
            timeout_s=10,
            headers={"traceparent": TRACEPARENT},
        )
    assert reply.output is not None
    assert len(seen) == 1 if streaming else len(seen) >= 2  # the message, then its reads
    assert seen == [TRACEPARENT] * len(seen)
