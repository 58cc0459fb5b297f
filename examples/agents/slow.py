"""The ``slow`` agent: waits, then echoes its input; can be cancelled while it waits.

The wait is ``--delay`` seconds (default 5, or ``EXAMPLE_AGENT_DELAY_S``); a numeric
``delay_s`` field in the input overrides it for that call (the field stays in the reply).

The agent always works as a Task: it publishes the Task (``submitted``, then ``working``)
before it starts waiting, so a client that uses ``SendStreamingMessage`` learns the task id
from the first event of the stream and can ``CancelTask`` it. On cancel, a2a-sdk calls
:meth:`SlowAgent.cancel` (which publishes ``canceled``) and then cancels the asyncio task
running :meth:`SlowAgent.run`, which interrupts the wait: the task ends ``canceled`` and no
reply is produced.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from a2a.server.agent_execution import RequestContext
from a2a.server.events import EventQueue

from examples.agents.common import ExampleAgent, complete_with_data, start_task

MAX_DELAY_S = 3600.0


def _delay(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    delay = float(value)
    if not math.isfinite(delay) or delay < 0:
        return None
    return min(delay, MAX_DELAY_S)


class SlowAgent(ExampleAgent):
    kind = "slow"
    title = "Slow"
    skill_description = (
        "Waits, then replies with the input unchanged. The wait is the agent's --delay "
        '(default 5 s) unless the input has a numeric "delay_s" field. Works as a Task '
        "(submitted, working, then completed with one artifact); CancelTask during the wait "
        "ends the task canceled."
    )
    examples = ('{"delay_s": 0.5, "x": 1} -> (after 0.5 s) {"delay_s": 0.5, "x": 1}',)

    def reconfigure(self, changes: Mapping[str, Any]) -> None:
        unknown = sorted(set(changes) - {"delay_s"})
        if unknown:
            raise ValueError(f"slow takes delay_s, not {unknown}")
        if "delay_s" in changes:
            delay = _delay(changes["delay_s"])
            if delay is None:
                raise ValueError("delay_s must be a non-negative number")
            self.settings.delay_s = delay

    def extra_stats(self) -> dict[str, Any]:
        return {"delay_s": self.settings.delay_s}

    async def run(
        self, context: RequestContext, event_queue: EventQueue, data: dict[str, Any], call: int
    ) -> None:
        updater = await start_task(context, event_queue)
        delay = _delay(data.get("delay_s"))
        await asyncio.sleep(self.settings.delay_s if delay is None else delay)
        await complete_with_data(updater, data)
        self.stats.completed += 1
