"""Authentication and authorisation that do not depend on the web framework: settings,
credentials (API keys, JWTs, the bootstrap admin key) and the access policy."""
