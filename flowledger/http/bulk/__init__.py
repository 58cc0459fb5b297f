"""``/api/v1/runs/bulk``: cancel or retry many runs at once."""
