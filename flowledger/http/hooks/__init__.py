"""``/hooks/{path}``: inbound webhooks, each a webhook trigger's endpoint (ADR 0017)."""
