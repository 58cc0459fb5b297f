"""Webhook deliveries: the sender that POSTs enqueued deliveries, and the signing scheme.

Deliveries are enqueued by the webhooks projection (:mod:`flowledger.projections.webhooks`)."""
