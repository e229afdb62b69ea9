"""Content digests as the registry writes them: ``<algorithm>:<hex>``."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from regvault.errors import InvalidInput

HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+")


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<64 lowercase hex>`` (also sha384/sha512); raise InvalidInput otherwise."""
        if not isinstance(text, str):
            raise InvalidInput(f"digest must be a string, got {type(text).__name__}")
        algorithm, sep, hexpart = text.partition(":")
        if not sep:
            raise InvalidInput(f"invalid digest {text[:80]!r}: expected 'sha256:<64 hex characters>'")
        return cls.from_parts(algorithm, hexpart, original=text)

    @classmethod
    def from_parts(cls, algorithm: str, hexpart: str, original: str | None = None) -> Digest:
        shown = (original if original is not None else f"{algorithm}:{hexpart}")[:80]
        expected = HEX_LENGTH.get(algorithm)
        if expected is None:
            raise InvalidInput(f"invalid digest {shown!r}: unsupported algorithm {algorithm[:20]!r}")
        if len(hexpart) != expected or not _HEX.fullmatch(hexpart):
            raise InvalidInput(
                f"invalid digest {shown!r}: {algorithm} needs {expected} lowercase hex characters"
            )
        return cls(algorithm, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"

    def link_body(self) -> bytes:
        """The exact bytes of a registry link object that points at this digest."""
        return str(self).encode("ascii")

    def link_etag(self) -> str:
        """The S3 ETag of a single-part, non-KMS PUT of this digest's link body (MD5 of the body)."""
        return hashlib.md5(self.link_body(), usedforsecurity=False).hexdigest()


def parse_link_body(body: bytes) -> Digest:
    """Parse the bytes of a link object; raise InvalidInput when they are not exactly a digest."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidInput(f"link body is not ASCII ({len(body)} bytes)") from None
    return Digest.parse(text)
