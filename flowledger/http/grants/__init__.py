"""Per-workflow grants over HTTP: the access rules the policy asks, what lists may show, and
the grants resource (``/api/v1/workflows/{id}/grants``, ``.../owner``). See ADR 0010."""
