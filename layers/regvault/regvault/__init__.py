"""regvault: keep a self-hosted Docker registry's S3 storage safe (audit, history, restore)."""

__version__ = "0.1.0"
