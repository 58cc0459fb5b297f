"""API keys over HTTP (admin only): issue, list, read, revoke; and ``whoami``."""
