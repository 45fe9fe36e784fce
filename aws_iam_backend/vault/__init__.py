"""Vault's rules, pure: request fields (``fields``), Go-compatible formatting (``gocompat``),
roles, client/identity/STS configuration, policy names and token TTL arithmetic."""
