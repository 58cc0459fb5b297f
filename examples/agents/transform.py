"""The ``transform`` agent: a deterministic transformation of its input.

* every string value (at any depth, in objects and lists) is upper-cased; keys are kept;
* when the input has a string ``text`` field, ``length`` (characters) and ``word_count``
  (whitespace-separated words) of the original text are added.

``{"text": "hello big world", "n": 1}`` -> ``{"text": "HELLO BIG WORLD", "n": 1,
"length": 15, "word_count": 3}``. The reply is a Task with one artifact holding one data part.
"""

from __future__ import annotations

from typing import Any

from a2a.server.agent_execution import RequestContext
from a2a.server.events import EventQueue

from examples.agents.common import ExampleAgent, complete_with_data, start_task


def upper_strings(value: Any) -> Any:
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, dict):
        return {key: upper_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [upper_strings(item) for item in value]
    return value


def transform(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = upper_strings(data)
    text = data.get("text")
    if isinstance(text, str):
        result["length"] = len(text)
        result["word_count"] = len(text.split())
    return result


class TransformAgent(ExampleAgent):
    kind = "transform"
    title = "Transform"
    skill_description = (
        "Upper-cases every string value of the input object (recursively, keys unchanged). "
        'If the input has a string "text" field, adds "length" (number of characters) and '
        '"word_count" (number of whitespace-separated words) of the original text. Input and '
        'output are one data part each; a text part is treated as {"text": ...}.'
    )
    examples = (
        '{"text": "hello big world"} -> {"text": "HELLO BIG WORLD", "length": 15, "word_count": 3}',
    )
    input_schema = {
        "type": "object",
        "required": ["text"],
        "properties": {"text": {"type": "string", "description": "The text to shout."}},
    }
    output_schema = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "The text, upper-cased."},
            "length": {"type": "integer", "description": "Characters of the original text."},
            "word_count": {"type": "integer", "description": "Words of the original text."},
        },
    }

    async def run(
        self, context: RequestContext, event_queue: EventQueue, data: dict[str, Any], call: int
    ) -> None:
        updater = await start_task(context, event_queue)
        await complete_with_data(updater, transform(data))
        self.stats.completed += 1
