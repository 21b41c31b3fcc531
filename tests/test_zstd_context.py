"""zstd decoding keeps one decompression context per thread: a new one per chunk cost a few
percent of every chunk's decoding, and a context is not safe to share between threads."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from bigarrays.codecs import zstd
from bigarrays.errors import CorruptChunkError


def test_one_context_per_thread_decodes_frame_after_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    # The module zstd decodes with (a test of a missing package may have imported it afresh).
    module = zstd._zstandard()
    real = module.ZstdDecompressor

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "ZstdDecompressor", counting)
    monkeypatch.setattr(zstd, "_local", threading.local())
    values = [np.arange(i, i + 5000, dtype=np.uint32).tobytes() for i in range(4)]
    frames = [zstd.compress(v) for v in values]

    def decode_all() -> None:
        for _ in range(3):
            for frame, value in zip(frames, values, strict=True):
                assert zstd.decompress(frame, "k", 1 << 20) == value

    decode_all()
    me = threading.get_ident()
    assert made.count(me) == 1
    both_done = threading.Barrier(2)

    def decode_and_wait() -> None:
        decode_all()
        both_done.wait(timeout=60)  # alive together: the two threads' idents differ

    others = [threading.Thread(target=decode_and_wait) for _ in range(2)]
    for t in others:
        t.start()
    for t in others:
        t.join()
    # Only this test's threads are counted: others of the process may decode meanwhile.
    ours = [m for m in made if m in {me, *(t.ident for t in others)}]
    assert sorted(ours) == sorted({me, *(t.ident for t in others)})


def test_a_damaged_frame_leaves_the_context_usable() -> None:
    value = np.arange(20000, dtype=np.uint16).tobytes()
    frame = zstd.compress(value)
    cut = frame[: len(frame) // 2]
    with pytest.raises(CorruptChunkError):
        zstd.decompress(cut, "k", 1 << 20)
    damaged = bytearray(frame)
    damaged[len(frame) // 2] ^= 0xFF
    with pytest.raises(CorruptChunkError):
        zstd.decompress(bytes(damaged), "k", 1 << 20)
    assert zstd.decompress(frame, "k", 1 << 20) == value
    # Several frames back to back still decode as one value.
    assert zstd.decompress(frame + frame, "k", 1 << 20) == value + value
