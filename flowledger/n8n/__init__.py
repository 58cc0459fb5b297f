"""n8n: reading an instance's workflows through its public REST API (``api``), and calling a
workflow as a step by POSTing to its webhook (``caller``).

It sits above the A2A client in the layers: a step's call to an n8n workflow answers with the
same :class:`~flowledger.a2a.reply.AgentReply` and fails with the same
:class:`~flowledger.a2a.errors.AgentCallError` (kinds, ``retryable``) as an A2A call, so the
executor retries both alike.
"""
