"""The registry's reference grammar (distribution/reference): names, tags and ``name:tag@digest``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from regvault.errors import InvalidInput
from regvault.storage.digest import Digest

# distribution/reference/regexp.go: path-component = alpha-numeric (separator alpha-numeric)*
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
NAME_MAX_LENGTH = 255


def validate_repository(name: str) -> str:
    """Return ``name`` when it is a valid repository name (``team/app``), else raise InvalidInput."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("repository name is empty")
    shown = name[:80].encode("unicode_escape").decode("ascii")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"repository name {shown!r}… is longer than {NAME_MAX_LENGTH} characters")
    for component in name.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidInput(
                f"invalid repository name {shown!r}: components are lowercase letters and digits "
                "separated by '.', '_', '__' or '-', joined by '/'"
            )
    return name


def validate_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        shown = str(tag)[:80].encode("unicode_escape").decode("ascii")
        raise InvalidInput(
            f"invalid tag {shown!r}: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
        )
    return tag


def is_valid_repository(name: str) -> bool:
    try:
        validate_repository(name)
    except InvalidInput:
        return False
    return True


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG.fullmatch(tag))


@dataclass(frozen=True, slots=True)
class Reference:
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse ``team/app``, ``team/app:1.2``, ``team/app@sha256:…`` or ``team/app:1.2@sha256:…``."""
        if not isinstance(text, str) or not text:
            raise InvalidInput("reference is empty")
        rest, at, digest_text = text.partition("@")
        digest = Digest.parse(digest_text) if at else None
        name, tag = rest, None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            name, tag = rest[:colon], rest[colon + 1 :]
            validate_tag(tag)
        if ":" in name:
            raise InvalidInput(
                f"invalid reference {text[:80]!r}: registry host names are not part of a "
                "repository name here (use 'team/app:tag')"
            )
        validate_repository(name)
        return cls(name, tag, digest)

    def __str__(self) -> str:
        out = self.repository
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out
