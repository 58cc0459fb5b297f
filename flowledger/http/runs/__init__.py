"""Runs over HTTP: execute, follow, cancel, retry, dry-run."""
