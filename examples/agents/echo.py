"""The ``echo`` agent: replies with its input unchanged.

By default it answers with a direct A2A *Message* (no task is created), the simplest A2A
interaction; ``--reply-as task`` makes it create a Task and put the reply in an artifact.
"""

from __future__ import annotations

from typing import Any

from a2a.helpers import new_data_message
from a2a.server.agent_execution import RequestContext
from a2a.server.events import EventQueue

from examples.agents.common import ExampleAgent, complete_with_data, start_task


class EchoAgent(ExampleAgent):
    kind = "echo"
    title = "Echo"
    skill_description = (
        "Replies with the input unchanged: send one data part holding a JSON object and get "
        "the same object back in one data part. A text part is accepted and comes back as "
        '{"text": "..."}. Replies with a Message (no task) unless started with '
        "--reply-as task."
    )
    examples = ('{"hello": "world"} -> {"hello": "world"}',)

    async def run(
        self, context: RequestContext, event_queue: EventQueue, data: dict[str, Any], call: int
    ) -> None:
        if self.settings.reply_as == "task":
            updater = await start_task(context, event_queue)
            await complete_with_data(updater, data)
        else:
            await event_queue.enqueue_event(new_data_message(data, context_id=context.context_id))
        self.stats.completed += 1
