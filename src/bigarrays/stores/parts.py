"""A value given in parts (:meth:`~bigarrays.stores.base.Store.put_parts`), as backends that
upload in parts take it: the first parts of an iterator, the rest handed on in turn, and the
parts of a multipart upload cut from them one at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def first_parts(parts: Iterator[memoryview], size: int) -> tuple[list[memoryview], bool]:
    """The first of ``parts`` until they hold more than ``size`` bytes, and whether they do
    (False: the iterator ended first, and these are all of them)."""
    head: list[memoryview] = []
    held = 0
    for part in parts:
        head.append(part)
        held += part.nbytes
        if held > size:
            return head, True
    return head, False


def drain(items: list[memoryview]) -> Iterator[memoryview]:
    """``items`` in turn, each let go by the list as it is given (the first parts of a value
    taken from an iterator, held no longer than they are needed)."""
    items.reverse()
    while items:
        yield items.pop()


def cut_parts(parts: Iterable[memoryview], size: int) -> Iterator[bytes]:
    """The bytes of ``parts`` laid end to end, cut into pieces of ``size`` (the last shorter):
    the parts of a multipart upload, made one at a time, so that no more than one is held."""
    out: list[memoryview] = []
    held = 0
    for part in parts:
        view = part.cast("B") if part.format != "B" or part.ndim != 1 else part
        while len(view):
            take = min(size - held, len(view))
            out.append(view[:take])
            held += take
            view = view[take:]
            if held == size:
                yield b"".join(out)
                out, held = [], 0
    if held:
        yield b"".join(out)
