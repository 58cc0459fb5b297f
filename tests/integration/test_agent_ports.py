"""The test support's sample agents survive a chosen port being taken before they bind it.

``spawn`` picks a port that was free a moment ago; another socket can take it before the agent
binds it. The agent then exits with "address already in use", and ``wait_ready`` starts it
again on a new port instead of failing the fixture that asked for it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support import agents, ports
from tests.support.agents import CARD_PATH, spawn
from tests.support.ports import HOST


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_an_agent_whose_port_was_taken_starts_again_on_another(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    offered = iter([taken_port])
    real_free_port = ports.free_port
    monkeypatch.setattr(agents, "free_port", lambda: next(offered, None) or real_free_port())

    process = spawn("echo")
    assert process.url == f"http://{HOST}:{taken_port}/"
    try:
        process.wait_ready()
        assert process.url != f"http://{HOST}:{taken_port}/"
        card = httpx.get(process.url.rstrip("/") + CARD_PATH, timeout=5.0)
        assert card.status_code == 200
    finally:
        process.stop()


def test_an_agent_given_a_taken_port_explicitly_fails_with_its_log(taken_port: int) -> None:
    process = spawn("echo", port=taken_port)
    try:
        with pytest.raises(RuntimeError, match="address already in use"):
            process.wait_ready()
    finally:
        process.stop()
