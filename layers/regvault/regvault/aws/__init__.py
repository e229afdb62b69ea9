"""The AWS boundary: the only package that imports boto3/botocore (tests/unit/test_architecture.py).

- ``clients``: boto3 clients with one retry config, the S3 request counter;
- ``listing``: ListObjectVersions pages parsed fast, and as ``VersionRecord``;
- ``errors``: botocore failures as ``regvault.errors`` domain errors (``expected`` for setup's calls);
- ``s3``: ``S3Store``, the ``regvault.storage.store.RegistryStore`` the core depends on, and the bucket
  settings readers;
- ``services``: SNS, SSM and Step Functions wrappers.
"""
