"""Prometheus metrics: the one module every part imports to count what it does.

Each metric is a module-level object in prometheus_client's default registry, so recording is
one line wherever it happens (``metrics.EVENTS_APPENDED.labels(event_type=...).inc()``). A
process exposes what *it* recorded: the API at ``/metrics``, a worker on
``FLOWLEDGER_WORKER_METRICS_PORT`` (:func:`serve_worker_metrics`). Follower lag is not recorded
by any process: the API computes it from the database at scrape time
(:class:`flowledger.eventlog.lag.LagCollector`), so it is right whichever process applies the
events.

Names follow Prometheus conventions: ``flowledger_`` prefix, base units (seconds), ``_total``
for counters. Labels stay low-cardinality: route templates, never raw paths; agent names,
never run ids.
"""

from __future__ import annotations

import logging
from typing import Final

from prometheus_client import REGISTRY, Counter, Enum, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STEP_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

# --- HTTP (recorded by flowledger.http.observability) -------------------------------------
HTTP_REQUESTS: Final = Counter(
    "flowledger_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION: Final = Histogram(
    "flowledger_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUEST_ERRORS: Final = Counter(
    "flowledger_http_request_errors_total",
    "HTTP requests answered with a 4xx or 5xx status, by method, route template and status.",
    ["method", "route", "status"],
)

# --- Event store (recorded by EventStore.record) ------------------------------------------
EVENTS_APPENDED: Final = Counter(
    "flowledger_events_appended_total",
    "Events appended to the event store by this process, by event type.",
    ["event_type"],
)
WRITE_BATCH_COMMANDS: Final = Histogram(
    "flowledger_write_batch_commands",
    "Commands recorded together in one transaction by this process's writer (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
WRITE_BATCH_SPLITS: Final = Counter(
    "flowledger_write_batch_splits_total",
    "Batches split in halves and recorded again because one command in them conflicted.",
)

# --- Followers: projectors, relay, webhooks, executor (recorded by flowledger.eventlog.follower) --
FOLLOWER_EVENTS: Final = Counter(
    "flowledger_follower_events_total",
    "Events a follower in this process has handled (relevant to it or not).",
    ["follower"],
)
FOLLOWER_BATCH_DURATION: Final = Histogram(
    "flowledger_follower_batch_duration_seconds",
    "Time a follower in this process took to handle one batch, commit included.",
    ["follower"],
    buckets=LATENCY_BUCKETS,
)
FOLLOWER_RETRIES: Final = Counter(
    "flowledger_follower_retries_total",
    "Failed attempts a follower retried: reason=transient (database unreachable) or error.",
    ["follower", "reason"],
)
FOLLOWER_STATE: Final = Enum(
    "flowledger_follower_state",
    "State of each follower running in this process.",
    ["follower"],
    states=["starting", "running", "retrying", "failed", "stopped"],
)

# --- Projection rebuilds (recorded by flowledger.projections.rebuild) ----------------------
REBUILD_EVENTS: Final = Counter(
    "flowledger_rebuild_events_total",
    "Events replayed into fresh tables by projection rebuilds in this process.",
    ["projection"],
)
REBUILDS: Final = Counter(
    "flowledger_rebuilds_total",
    "Projection rebuilds finished by this process, by outcome (swapped or failed).",
    ["projection", "outcome"],
)

# --- Kafka relay (for the relay worker) ----------------------------------------------------
RELAY_PUBLISHED: Final = Counter(
    "flowledger_relay_published_total",
    "Events the relay published to Kafka and got acknowledged, by topic.",
    ["topic"],
)
RELAY_LEADER: Final = Gauge(
    "flowledger_relay_leader",
    "1 while this relay process leads (publishes), 0 while it stands by.",
    multiprocess_mode="livemax",  # API processes sharing their metrics (ADR 0025) show one 0
)
RELAY_PUBLISH_ERRORS: Final = Counter(
    "flowledger_relay_publish_errors_total",
    "Failed Kafka publish attempts by the relay, by topic.",
    ["topic"],
)

# --- Webhooks (for the webhook sender) -----------------------------------------------------
WEBHOOK_DELIVERIES: Final = Counter(
    "flowledger_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (delivered, failed, gave_up).",
    ["outcome"],
)
WEBHOOK_DELIVERY_DURATION: Final = Histogram(
    "flowledger_webhook_delivery_duration_seconds",
    "Time of one webhook POST, answered or not.",
    buckets=LATENCY_BUCKETS,
)

# --- Runs and the executor (for the executor) ----------------------------------------------
# Runs by status are counted in the runs read table at scrape time (flowledger_runs, see
# flowledger.projections.run_metrics); transitions are
# flowledger_events_appended_total{event_type="Run..."}.
STEP_DURATION: Final = Histogram(
    "flowledger_step_duration_seconds",
    "Duration of one workflow step (its agent call, retries included), by agent and status.",
    ["agent", "status"],
    buckets=STEP_BUCKETS,
)
AGENT_CALL_ERRORS: Final = Counter(
    "flowledger_agent_call_errors_total",
    "Failed agent calls, by agent name and error kind (timeout, network, http, rpc, ...).",
    ["agent", "kind"],
)
AGENT_CALL_RETRIES: Final = Counter(
    "flowledger_agent_call_retries_total",
    "Agent calls retried after a retryable error, by agent name.",
    ["agent"],
)
EXECUTOR_CONSUMER_LAG: Final = Gauge(
    "flowledger_executor_consumer_lag",
    "Kafka records the executor's consumer has not processed yet, by topic and partition.",
    ["topic", "partition"],
)


# --- Triggers (the scheduler and the hooks endpoint) ---------------------------------------
# Firings recorded (runs started, and schedule ticks that could not start one) are counted in
# the triggers read table at scrape time: flowledger_trigger_firings_total (see
# flowledger.projections.trigger_metrics).
TRIGGER_FIRE_ERRORS: Final = Counter(
    "flowledger_trigger_fire_errors_total",
    "Firings this process could not record (the database refused or was down), by trigger type;"
    " the tick stays due.",
    ["type"],
)
WEBHOOK_REQUESTS_REFUSED: Final = Counter(
    "flowledger_inbound_webhook_refused_total",
    "Inbound webhook requests that started no run, by reason (auth, replay, input, conflict, "
    "not_found, method).",
    ["reason"],
)


def serve_worker_metrics(port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
    """Serve this process's metrics on ``http://host:port/metrics`` from a daemon thread."""
    start_http_server(port, addr=host, registry=REGISTRY)
    log.info("metrics on http://%s:%d/metrics", host, port)
