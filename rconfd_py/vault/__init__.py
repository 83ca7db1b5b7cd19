"""Talking to Vault/OpenBao: the HTTP client, login, and lease arithmetic."""
