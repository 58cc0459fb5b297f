"""The workers that live on an event loop run on uvloop's (ADR 0028): the executor, the webhook
sender, and the relay's Kafka client thread. The executor's own bookkeeping (tasks, sockets,
timers) cost a seventh less CPU per run on it, in the runs-in-flight benchmark."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import uvloop

from flowledger.executor import service as executor_service
from flowledger.kafka.publisher import LoopThread
from flowledger.runtime.settings import Settings
from flowledger.webhooks import sender as webhook_sender


class _Recording:
    """Stands in for the worker's service: its ``run`` notes the loop it runs on."""

    loops: list[asyncio.AbstractEventLoop] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def run(self, stop: threading.Event) -> None:
        self.loops.append(asyncio.get_running_loop())


@pytest.fixture
def recording() -> list[asyncio.AbstractEventLoop]:
    _Recording.loops = []
    return _Recording.loops


def test_the_executor_runs_on_uvloop(
    monkeypatch: pytest.MonkeyPatch, recording: list[asyncio.AbstractEventLoop]
) -> None:
    monkeypatch.setattr(executor_service, "Executor", _Recording)
    executor_service.run_executor(object(), threading.Event())  # type: ignore[arg-type]
    assert [type(loop) for loop in recording] == [uvloop.Loop]


def test_the_webhook_sender_runs_on_uvloop(
    monkeypatch: pytest.MonkeyPatch, recording: list[asyncio.AbstractEventLoop]
) -> None:
    class Runtime:
        settings = Settings()
        database = None
        new_async_engine = None

    monkeypatch.setattr(webhook_sender, "WebhookSender", _Recording)
    webhook_sender.run_sender(Runtime(), threading.Event())  # type: ignore[arg-type]
    assert [type(loop) for loop in recording] == [uvloop.Loop]


def test_the_kafka_clients_thread_runs_uvloop() -> None:
    thread = LoopThread("test-loop")
    try:

        async def running() -> asyncio.AbstractEventLoop:
            return asyncio.get_running_loop()

        assert type(thread.run(running())) is uvloop.Loop
    finally:
        thread.close()
