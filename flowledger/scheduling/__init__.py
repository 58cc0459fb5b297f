"""The scheduler: fires schedule triggers at their ticks (``flowledger worker scheduler``)."""
