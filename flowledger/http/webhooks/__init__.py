"""Webhooks over HTTP: register, list, read, delete, and see each delivery and attempt."""
