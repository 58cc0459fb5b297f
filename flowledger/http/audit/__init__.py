"""The audit log over HTTP (admin only): filtered, paginated queries."""
