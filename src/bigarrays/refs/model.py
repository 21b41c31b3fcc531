"""References: each key of a store names inline bytes or a byte range of another file.

A :class:`Target` is ``(url, offset, length)``; ``offset`` and ``length`` None name the whole
file. Indexers build a :class:`References` and say in :attr:`References.skipped` what they could
not reference and why, so that nothing is left out silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """``length`` bytes at ``offset`` of the file at ``url`` (None, None: the whole file)."""

    url: str
    offset: int | None = None
    length: int | None = None


Ref = bytes | Target


@dataclass
class References:
    """The keys of a store: inline bytes or targets; and what could not be referenced."""

    refs: dict[str, Ref] = field(default_factory=dict)
    #: ``(name, reason)`` for every dataset, member or chunk left out.
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def update(self, other: References, prefix: str = "") -> None:
        """Take ``other``'s keys (under ``prefix``) and its skipped entries."""
        head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.refs.update({head + k: v for k, v in other.refs.items()})
        self.skipped.extend((head + name, why) for name, why in other.skipped)

    def targets(self) -> set[str]:
        """The URLs of the files the references point into."""
        return {v.url for v in self.refs.values() if isinstance(v, Target)}
