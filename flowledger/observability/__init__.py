"""Logs, metrics and traces."""

from typing import Final

METRICS_DIRECTORY: Final = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own variable: where the API processes of ``serve --processes N`` keep
their counters, so that ``/metrics``, whichever of them answers, sums them all (ADR 0025). It
must be set before prometheus_client is imported, so it lives here, beside nothing heavy."""
