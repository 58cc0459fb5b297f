"""Workflows over HTTP: schemas, queries on the workflow projections, and the controller."""
