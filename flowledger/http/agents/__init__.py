"""Agents over HTTP: schemas, queries on the agents projection, and the controller."""
