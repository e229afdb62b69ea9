"""The AWS boundary: the only package that imports boto3/botocore. Clients with one retry config, the
S3 store the core depends on (through ``regvault.storage.store.RegistryStore``), SNS, SSM and Step
Functions wrappers.
"""
