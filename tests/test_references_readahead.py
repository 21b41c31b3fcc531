"""Merged reads of references (``refs.readahead``) when the engine asks for chunks in another
order than the file holds them: every byte is read once per read of the region, and a second
read of it merges again."""

from __future__ import annotations

import itertools
import json
import threading

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.refs import readahead
from bigarrays.refs.model import Target
from bigarrays.refs.readahead import ReadAhead
from bigarrays.stores.ranges import RangePolicy

SIZE = 100
#: Runs of three chunks, so that a run of the file's order ends inside a row of the grid.
POLICY = RangePolicy(gap=1 << 20, max_span=3 * SIZE)


def _file_order_refs(grid: tuple[int, ...]) -> dict[str, Target]:
    """Chunks of ``SIZE`` bytes laid out in C order (the last axis fastest), back to back."""
    keys = [".".join(map(str, index)) for index in itertools.product(*map(range, grid))]
    return {key: Target("f", i * SIZE, SIZE) for i, key in enumerate(keys)}


def _engine_order(grid: tuple[int, ...]) -> list[str]:
    """The chunk engine's order: the first axis fastest."""
    return [".".join(map(str, rev[::-1])) for rev in itertools.product(*map(range, grid[::-1]))]


def test_chunks_handed_out_are_not_read_again_in_one_read() -> None:
    grid = (4, 3, 4)
    refs = _file_order_refs(grid)
    blob = bytes(range(256)) * (len(refs) * SIZE // 256 + 1)
    reads: list[tuple[int, int]] = []

    def read(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return blob[offset : offset + length]

    ahead = ReadAhead(refs.items(), POLICY)
    for _ in range(2):  # the second read of the region merges as the first did
        reads.clear()
        for key in _engine_order(grid):
            ref = refs[key]
            assert ahead.get(key, ref, read) == blob[ref.offset : ref.offset + SIZE]  # type: ignore[operator]
        assert sum(n for _, n in reads) == len(refs) * SIZE  # each byte once
        # Per (z, y): a run of x = 0..2 when x = 0 is asked for, x = 3 alone later.
        assert len(reads) == 2 * grid[0] * grid[1]


def test_threads_reading_in_engine_order_read_each_byte_once() -> None:
    grid = (8, 4, 4)
    refs = _file_order_refs(grid)
    blob = np.random.default_rng(0).bytes(len(refs) * SIZE)
    lock = threading.Lock()
    read_bytes = [0]

    def read(offset: int, length: int) -> bytes:
        with lock:
            read_bytes[0] += length
        return blob[offset : offset + length]

    ahead = ReadAhead(refs.items(), POLICY)
    order = iter(_engine_order(grid))
    errors: list[str] = []

    def work() -> None:
        while True:
            with lock:
                key = next(order, None)
            if key is None:
                return
            ref = refs[key]
            if ahead.get(key, ref, read) != blob[ref.offset : ref.offset + SIZE]:  # type: ignore[operator]
                errors.append(key)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert read_bytes[0] == len(refs) * SIZE


def test_a_3d_read_over_http_transfers_the_stored_bytes_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from network_servers import served_folder

    data = np.arange(8 * 6 * 20, dtype="<u2").reshape(8, 6, 20)
    chunks = (2, 3, 5)
    monkeypatch.setattr(readahead, "MAX_SPAN", 3 * 2 * 3 * 5 * 2)  # three chunks
    with served_folder() as (root, server):
        refs: dict[str, object] = {".zarray": json.dumps({
            "zarr_format": 2, "shape": list(data.shape), "chunks": list(chunks), "dtype": "<u2",
            "compressor": None, "fill_value": 0, "order": "C", "filters": None,
        })}  # fmt: skip
        blob = bytearray()
        for index in itertools.product(
            *(range(n // c) for n, c in zip(data.shape, chunks, strict=True))
        ):
            box = tuple(slice(i * c, i * c + c) for i, c in zip(index, chunks, strict=True))
            chunk = data[box].tobytes()
            refs[".".join(map(str, index))] = [f"{server.url}/blob.bin", len(blob), len(chunk)]
            blob += chunk
        (root / "blob.bin").write_bytes(bytes(blob))
        (root / "refs.json").write_text(json.dumps({"version": 1, "refs": refs}))
        vol = ba.open(f"reference://{server.url}/refs.json", threads=4)
        store = vol.store
        got: list[int] = []
        target, _ = store._target(f"{server.url}/blob.bin")  # type: ignore[attr-defined]
        real = target.get_range

        def counted(key: str, start: int, length: int | None = None) -> bytes | None:
            out = real(key, start, length)
            got.append(len(out or b""))
            return out

        target.get_range = counted  # type: ignore[method-assign]
        np.testing.assert_array_equal(vol[:, :, :], data)
        assert sum(got) == len(blob)
        got.clear()
        np.testing.assert_array_equal(vol[:, :, :], data)
        assert sum(got) == len(blob)


def test_pieces_read_ahead_fit_under_the_limit_and_are_never_read_twice() -> None:
    grid = (6, 5, 4)
    refs = _file_order_refs(grid)
    blob = np.random.default_rng(1).bytes(len(refs) * SIZE)
    reads: list[int] = []

    def read(offset: int, length: int) -> bytes:
        reads.append(length)
        return blob[offset : offset + length]

    # Room for 10 pieces: the first column of the engine's walk would read ahead 2 x 30.
    ahead = ReadAhead(refs.items(), POLICY, limit=10 * SIZE)
    for key in _engine_order(grid):
        ref = refs[key]
        assert ahead.get(key, ref, read) == blob[ref.offset : ref.offset + SIZE]  # type: ignore[operator]
    assert sum(reads) == len(refs) * SIZE
    assert len(reads) < len(refs)


def test_stale_pieces_make_room_for_new_runs() -> None:
    refs = _file_order_refs((200,))
    blob = np.random.default_rng(2).bytes(len(refs) * SIZE)
    reads: list[tuple[int, int]] = []

    def read(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return blob[offset : offset + length]

    def get(i: int) -> None:
        ref = refs[str(i)]
        assert ahead.get(str(i), ref, read) == blob[i * SIZE : i * SIZE + SIZE]

    # Room for three pieces; a piece is stale after 64 requests.
    ahead = ReadAhead(refs.items(), POLICY, limit=3 * SIZE)
    get(0)  # reads 1 and 2 ahead, which no one asks for
    get(10)  # reads 11 ahead: the room is full
    assert reads == [(0, 3 * SIZE), (10 * SIZE, 2 * SIZE)]
    # Cutouts elsewhere, walked backwards so that none reads ahead (the piece after each was
    # just handed out): each is read alone, and 1, 2 and 11 stay while they are recent.
    for i in range(150, 150 - 70, -1):
        get(i)
    assert reads[2:] == [(i * SIZE, SIZE) for i in range(150, 80, -1)]
    get(20)  # 1, 2 and 11 are stale now: dropped to make room for a merged read
    assert reads[-1] == (20 * SIZE, 3 * SIZE)
