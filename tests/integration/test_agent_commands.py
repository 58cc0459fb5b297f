"""Agent commands against the real event store: unique names, even under concurrency."""

from __future__ import annotations

import threading

import pytest

from flowledger.commands.agents import DeleteAgent, RegisterAgent, delete_agent, register_agent
from flowledger.domain.errors import NameTaken
from flowledger.eventlog.store import EventMetadata
from flowledger.runtime.process import Runtime

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="test")


def test_a_taken_name_is_refused(runtime: Runtime) -> None:
    register_agent(runtime.store, RegisterAgent(name="echo", url="http://a"), META)
    with pytest.raises(NameTaken):
        register_agent(runtime.store, RegisterAgent(name="echo", url="http://b"), META)


def test_a_deleted_agents_name_can_be_registered_again(runtime: Runtime) -> None:
    first = register_agent(runtime.store, RegisterAgent(name="echo", url="http://a"), META)
    delete_agent(runtime.store, DeleteAgent(agent_id=first.aggregate.id), META)
    second = register_agent(runtime.store, RegisterAgent(name="echo", url="http://b"), META)
    assert second.aggregate.id != first.aggregate.id
    with pytest.raises(NameTaken):
        register_agent(runtime.store, RegisterAgent(name="echo", url="http://c"), META)


@pytest.mark.parametrize("name_was_used_before", [False, True])
def test_of_concurrent_registrations_of_one_name_exactly_one_succeeds(
    runtime: Runtime, name_was_used_before: bool
) -> None:
    if name_was_used_before:  # the claim exists and is free: the race is on its next version
        old = register_agent(runtime.store, RegisterAgent(name="echo", url="http://old"), META)
        delete_agent(runtime.store, DeleteAgent(agent_id=old.aggregate.id), META)
    contenders = 6
    barrier = threading.Barrier(contenders)
    results: list[str] = []

    def register(i: int) -> None:
        barrier.wait()
        try:
            register_agent(runtime.store, RegisterAgent(name="echo", url=f"http://{i}"), META)
            results.append("registered")
        except NameTaken:
            results.append("taken")

    threads = [threading.Thread(target=register, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["registered"] + ["taken"] * (contenders - 1)
