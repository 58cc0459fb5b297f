"""Bulk operations carried out: the runner that applies a bulk operation to its runs one at a
time, at a bounded pace, resumable after a crash (ADR 0020)."""
