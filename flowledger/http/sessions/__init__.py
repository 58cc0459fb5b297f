"""Signing in and out: the OAuth2 token endpoint (password and refresh grants), sign-out."""
