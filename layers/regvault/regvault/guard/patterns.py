"""``ProtectedTags``: comma-separated ``REPO_GLOB:TAG_GLOB`` patterns (``*:v*``, ``prod/*:*``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from regvault.errors import InvalidInput

# what a glob over a repository name or a tag may hold: their characters, and * ? [ ] !
_REPO_GLOB = re.compile(r"[a-z0-9._/\-*?\[\]!]{1,255}")
_TAG_GLOB = re.compile(r"[A-Za-z0-9._\-*?\[\]!]{1,128}")


@dataclass(frozen=True)
class Protection:
    patterns: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Protection:
        """Empty (or only commas and spaces): nothing is protected."""
        patterns = []
        for raw in (text or "").split(","):
            item = raw.strip()
            if not item:
                continue
            repo, sep, tag = item.rpartition(":")
            if not sep or not repo or not tag:
                raise InvalidInput(
                    f"protected tag pattern {item[:80]!r} is not REPO_GLOB:TAG_GLOB (e.g. *:v*)"
                )
            if not _REPO_GLOB.fullmatch(repo) or not _TAG_GLOB.fullmatch(tag):
                raise InvalidInput(
                    f"protected tag pattern {item[:80]!r}: a repository glob takes a-z 0-9 . _ - / and "
                    "* ? [ ], a tag glob A-Z a-z 0-9 . _ - and * ? [ ]"
                )
            patterns.append((repo, tag))
        if len(patterns) > 50:
            raise InvalidInput(f"at most 50 protected tag patterns, got {len(patterns)}")
        return cls(tuple(patterns))

    def protects(self, repository: str, tag: str) -> bool:
        return any(fnmatchcase(repository, r) and fnmatchcase(tag, t) for r, t in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __str__(self) -> str:
        return ",".join(f"{r}:{t}" for r, t in self.patterns)
