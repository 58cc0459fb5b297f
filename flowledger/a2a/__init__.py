"""The A2A client flowledger calls agents with (the executor's steps, the agents API's health
check), built on a2a-sdk's client. It is a protocol client: it imports nothing of flowledger.

One :class:`AgentClient` serves every agent: it keeps one ``httpx.AsyncClient`` and, per agent
base URL, the resolved agent card and the a2a-sdk ``Client`` made from it
(``ClientFactory(ClientConfig(httpx_client=...)).create(card)``, JSON-RPC binding).

Modules, one concern each: ``client`` (the calls: send, get_task, cancel, the card cache),
``card`` (where a card is read from, :class:`AgentCardInfo`), ``auth`` (:class:`AgentAuth`),
``tracker`` (following one call's task or message), ``reply`` (what a finished call amounts to),
``output`` (parts and protobuf values as Python: the reply contract below), ``errors``
(:class:`AgentCallError` and the mapping of httpx, a2a-sdk and JSON-RPC errors: the table below),
``pools`` (the httpx client agents are called with, over aiohttp's connections), ``draining``
(a streamed answer read to its end, so its connection is kept), ``cookies`` (none are kept).

How :meth:`AgentClient.send` talks to an agent
==============================================

The step input goes out as ONE A2A data part (a JSON object) in a ``SendMessageRequest``.

* If the agent card advertises ``capabilities.streaming`` the call uses
  ``SendStreamingMessage`` (SSE). An agent working as a Task sends the Task (or a status
  update naming it) as its first event, so the task id is known - and ``on_task`` is called -
  while the agent is still working. That is what makes :meth:`AgentClient.cancel` possible
  during the call. The stream is read until the task reaches a terminal or interrupted state.
  If the stream ends early (the connection dropped, or the server closed it after a cancel
  without sending the final state - a2a-sdk documents that this can happen), the task is
  read back with ``GetTask``, polling until it is final.
* Otherwise it uses ``SendMessage`` with ``return_immediately`` so the agent answers with the
  Task as soon as it exists; ``on_task`` is called then and ``GetTask`` is polled until the
  task is final.
* An agent may also answer with a direct Message instead of a Task: then there is no task id,
  ``on_task`` is not called and ``AgentReply.state`` is ``None``.

Reply contract (``AgentReply.output``)
--------------------------------------

The parts of the reply - the artifacts of the completed Task in order (or, without artifacts,
its final status message), or the parts of the direct Message - become ``output``:

* exactly one part -> that part's value: a data part's JSON value, a text part as
  ``{"text": ...}``;
* only text parts -> ``{"text": "<the texts joined by newlines>"}``;
* several parts -> a list with each part's value (url/raw parts become
  ``{"url": ..., "media_type": ..., "filename": ...}`` / ``{"raw_base64": ..., ...}``);
* no parts -> ``None``.

A2A carries data parts as ``google.protobuf.Value``, which stores every number as a double;
whole numbers are turned back into ints (``3.0`` -> ``3``). Object key order is not preserved
by the transport.

Errors
------

Everything that goes wrong is an :class:`AgentCallError` with ``retryable`` and ``kind``:

========================  =========  ======================================================
what                      retryable  kind
========================  =========  ======================================================
deadline passed           yes        ``timeout`` (the agent's task is cancelled, best effort)
cannot connect / reset    yes        ``network``
HTTP 408/425/429/5xx      yes        ``http``
other HTTP 4xx (401...)   no         ``http``
JSON-RPC internal error   yes        ``rpc`` (-32603)
other JSON-RPC errors     no         ``rpc``
task ``failed``           yes [*]_   ``task_failed``
task ``rejected``         no [*]_    ``task_rejected``
task ``canceled``         no         ``task_canceled`` (raised as :class:`AgentCallCancelled`)
input/auth required       no         ``input_required`` (flowledger cannot converse)
malformed reply / card    no         ``protocol`` / ``card``
input not JSON            no         ``input``
========================  =========  ======================================================

.. [*] unless the agent says otherwise: a boolean ``retryable`` in the metadata of the final
   status message (or of the task) overrides the default.

:class:`AgentCallCancelled` subclasses :class:`AgentCallError`; catch it first. Exceptions
raised by the ``on_task`` callback propagate unchanged.
"""

from flowledger.a2a.auth import AgentAuth
from flowledger.a2a.card import AgentCardInfo
from flowledger.a2a.client import AgentClient, fetch_agent_card
from flowledger.a2a.errors import AgentCallCancelled, AgentCallError, ErrorKind
from flowledger.a2a.reply import AgentReply

__all__ = [
    "AgentAuth",
    "AgentCallCancelled",
    "AgentCallError",
    "AgentCardInfo",
    "AgentClient",
    "AgentReply",
    "ErrorKind",
    "fetch_agent_card",
]
