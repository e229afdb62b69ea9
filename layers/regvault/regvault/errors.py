"""Domain errors. Every message is one line a person can act on."""

from __future__ import annotations


class RegvaultError(Exception):
    """Base of every error regvault reports to a user (CLI exit 2, Lambda error)."""

    exit_code = 2


class InvalidInput(RegvaultError):
    """A name, tag, digest, timestamp or event that does not follow the grammar."""


class BucketNotFound(RegvaultError):
    pass


class AccessDenied(RegvaultError):
    pass


class EndpointUnreachable(RegvaultError):
    pass


class CredentialsMissing(RegvaultError):
    pass


class NoRegistryFound(RegvaultError):
    """The bucket exists but holds no registry under the given root."""


class ObjectMissing(RegvaultError):
    """A key or a key's version that does not exist (any more)."""


class ObjectTooLarge(RegvaultError):
    """An object is larger than regvault will read into memory (e.g. a 100 MB "manifest")."""


class StorageError(RegvaultError):
    """Any other S3 failure, with the operation and the code S3 returned."""


class ManifestError(RegvaultError):
    """Bytes that are not a manifest regvault can read."""


class AwsCallFailed(RegvaultError):
    """An AWS call failed with one of the error codes its caller expects (``regvault.aws.errors.expected``):
    a resource not found, already there, not allowed. ``code`` is AWS's error code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
