"""The ``flaky`` agent: fails its first N calls, then behaves like ``echo``.

N comes from ``--fail-first`` (or ``EXAMPLE_AGENT_FAIL_FIRST``), and ``POST /stats/reset`` with
``{"fail_first": N}`` re-arms it. How a call fails is ``--fail-mode``:

``task`` (default)
    the Task ends ``failed`` with a status message ``flaky: simulated failure i of N`` whose
    metadata carries ``{"retryable": true}``;
``error``
    the agent raises, which a2a-sdk turns into a JSON-RPC error (``-32603 Internal error``)
    and a failed task.

A successful call replies like ``echo`` but as a Task with one artifact; the artifact
metadata carries ``{"calls": n}`` and, with ``--report-calls``, the reply object gains a
``"calls": n`` field. ``GET /stats`` always has the count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from a2a.helpers import new_text_part
from a2a.server.agent_execution import RequestContext
from a2a.server.events import EventQueue

from examples.agents.common import ExampleAgent, complete_with_data, start_task

FAIL_MODES = ("task", "error")


class SimulatedFailureError(RuntimeError):
    """What ``flaky`` raises in ``--fail-mode error``."""


class FlakyAgent(ExampleAgent):
    kind = "flaky"
    title = "Flaky"
    skill_description = (
        "Fails its first N calls (N set with --fail-first, default 0), then echoes the input "
        "like the echo agent. A failure is a failed task (or, with --fail-mode error, a "
        'JSON-RPC internal error). GET /stats returns {"calls": n}; POST /stats/reset '
        'zeroes it and accepts {"fail_first": N, "fail_mode": "task"|"error"}.'
    )
    examples = ('call 1..N: failed task; call N+1: {"x": 1} -> {"x": 1}',)

    def reconfigure(self, changes: Mapping[str, Any]) -> None:
        unknown = sorted(set(changes) - {"fail_first", "fail_mode"})
        if unknown:
            raise ValueError(f"flaky takes fail_first and fail_mode, not {unknown}")
        fail_first = changes.get("fail_first", self.settings.fail_first)
        fail_mode = changes.get("fail_mode", self.settings.fail_mode)
        if isinstance(fail_first, bool) or not isinstance(fail_first, int) or fail_first < 0:
            raise ValueError("fail_first must be a non-negative integer")
        if fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be one of {FAIL_MODES}")
        self.settings.fail_first = fail_first
        self.settings.fail_mode = fail_mode

    def extra_stats(self) -> dict[str, Any]:
        return {"fail_first": self.settings.fail_first, "fail_mode": self.settings.fail_mode}

    async def run(
        self, context: RequestContext, event_queue: EventQueue, data: dict[str, Any], call: int
    ) -> None:
        fail_first = self.settings.fail_first
        if call <= fail_first:
            self.stats.failed += 1
            reason = f"flaky: simulated failure {call} of {fail_first}"
            if self.settings.fail_mode == "error":
                raise SimulatedFailureError(reason)
            updater = await start_task(context, event_queue)
            await updater.failed(
                updater.new_agent_message([new_text_part(reason)], metadata={"retryable": True})
            )
            return
        updater = await start_task(context, event_queue)
        reply = {**data, "calls": call} if self.settings.report_calls else data
        await complete_with_data(updater, reply, metadata={"calls": call})
        self.stats.completed += 1
