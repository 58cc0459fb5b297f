"""Runnable examples that go with flowledger (sample A2A agents, sample workflows)."""
