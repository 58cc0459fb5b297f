"""flowledger: an event-sourced CQRS service for managing agent workflows."""

__version__ = "0.1.0"
