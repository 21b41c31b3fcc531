"""The writer of a value written at offsets (:meth:`~bigarrays.stores.base.Store.open_value`) and
published whole: what a stream fills frame by frame where the backend
:attr:`~bigarrays.stores.base.Store.writes_at_offsets`."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bigarrays.stores.base import Buffer


class ValueWriter(abc.ABC):
    """A value being written at offsets (:meth:`Store.open_value`), unseen until published."""

    @abc.abstractmethod
    def write_at(self, offset: int, data: Buffer) -> None:
        """Write ``data`` at byte ``offset`` of the value."""

    @abc.abstractmethod
    def read_at(self, offset: int, size: int) -> bytes:
        """The ``size`` bytes at ``offset`` of what has been written."""

    @abc.abstractmethod
    def truncate(self, size: int) -> None:
        """Cut the value (or extend it with zeros) to ``size`` bytes."""

    def release(self) -> None:  # noqa: B027 (most values hold nothing open)
        """Let go of what the value holds open between writes (a file); a later write takes it
        again."""

    @abc.abstractmethod
    def publish(self) -> str | None:
        """Store the value in place of the key's old one; its version."""

    @abc.abstractmethod
    def discard(self) -> None:
        """Drop what was written: the key keeps its old value (nothing after a publish)."""
