"""Proving the audit trail against the event store: ``verify`` recomputes every audit row,
``replay`` rebuilds an entity's history version by version (``flowledger audit ...``)."""
