"""The registry's S3 layout and its object versions: digests, references, key shapes (``layout`` is
the only module that knows them), the versioned inventory and the model indexed over it.

Imports nothing of regvault's but ``errors``.
"""
