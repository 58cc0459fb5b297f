"""Sample A2A agents for developing and testing flowledger.

Four small agents, each a real A2A server built with a2a-sdk (JSON-RPC binding over HTTP,
agent card at ``/.well-known/agent-card.json``):

``echo``
    replies with its input unchanged (as a direct A2A *Message*, no task).
``transform``
    upper-cases every string value; for a ``text`` input also adds ``length`` and
    ``word_count`` (as a *Task* with one artifact).
``flaky``
    fails its first N calls (a *failed Task*, or a JSON-RPC error), then echoes.
``slow``
    waits before echoing; honours ``CancelTask`` (the task ends ``canceled``).

Start one with ``python -m examples.agents echo --port 9101`` or all four with
``python -m examples.agents all --base-port 9101``. Tests start them in subprocesses with
``tests/support/agents.py``. See ``examples/agents/README.md``.
"""

from typing import Final

AGENT_KINDS: Final = ("echo", "transform", "flaky", "slow")
"""The agents, in the order ``all`` assigns them consecutive ports."""

AGENT_VERSION: Final = "1.0.0"
"""The version every sample agent advertises on its agent card."""

__all__ = ["AGENT_KINDS", "AGENT_VERSION"]
