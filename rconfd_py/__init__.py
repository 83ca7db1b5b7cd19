"""rconfd-py: render config files from jsonnet templates and Vault secrets."""

__version__ = "0.1.0"
