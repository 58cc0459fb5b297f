"""``flowledger serve`` tunes the garbage collector before it serves, as the workers do: full
collections over everything the API holds were its slowest requests (ADR 0015)."""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator
from unittest.mock import patch

import pytest
import uvicorn

from flowledger.cli import serve as serving
from flowledger.http import app as app_module
from flowledger.runtime.settings import Settings


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.fixture
def handlers() -> Iterator[None]:
    """The app factory chains its stream closing before the signal handlers in place."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("collector", "handlers")
def test_serve_freezes_what_exists_at_start_and_collects_young_objects_less_often() -> None:
    # uvicorn builds the app (its factory) when it starts serving: here it builds it and stops.
    with (
        patch.object(app_module, "create_app", lambda settings: object()),
        patch.object(uvicorn.Server, "run", lambda self, sockets=None: self.config.load()),
    ):
        serving.serve(Settings(), "127.0.0.1", 0)
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == 50_000
