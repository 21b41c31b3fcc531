"""The three tools of ``zarr_compare.py``: how bigarrays, zarr-python 3 and TensorStore's zarr3
driver each create, write, open and read the same Zarr v3 array in a folder.

Every tool is given and returns C-ordered (z, y, x) arrays, so nobody transposes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

CHUNK = 64
PER_SHARD = 8  # inner chunks per shard along each axis
ZSTD_LEVEL = 3

Box = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Case:
    dtype: str
    layout: str
    codec: str

    @property
    def sharded(self) -> bool:
        return self.layout == "sharded"

    def label(self) -> str:
        return f"{self.dtype}/{self.layout}/{self.codec}"


# -- the tools -----------------------------------------------------------------------------------


class ZTool:
    """One library: how it creates, writes, opens and reads a Zarr v3 array in a folder."""

    name = ""

    def supports(self, case: Case) -> str | None:
        """None if ``case`` can be run, else why not (printed under the table)."""
        return None

    def settings(self) -> str:
        raise NotImplementedError

    def create(self, path: str, shape: tuple[int, ...], case: Case) -> Any:
        raise NotImplementedError

    def write(self, handle: Any, data: np.ndarray) -> None:
        raise NotImplementedError

    def open(self, path: str) -> Any:
        raise NotImplementedError

    def read(self, handle: Any, box: Box) -> np.ndarray:
        raise NotImplementedError

    def close(self, handle: Any) -> None:
        pass


def shard_edge() -> int:
    return CHUNK * PER_SHARD


def sharded_as_asked(path: str) -> bool:
    """Whether the zarr.json at ``path`` has 8³-chunk shards of 64³ inner chunks."""
    with open(os.path.join(path, "zarr.json")) as f:
        meta = json.load(f)
    outer = meta["chunk_grid"]["configuration"]["chunk_shape"]
    codecs = meta["codecs"]
    if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
        return False
    inner = codecs[0]["configuration"]["chunk_shape"]
    return bool(outer == [shard_edge()] * 3 and inner == [CHUNK] * 3)


class BigArraysZarr(ZTool):
    name = "bigarrays"

    # Ways to ask for 8³-chunk shards, tried in turn until one writes that layout: the
    # sharded Zarr API is new, and the run must say "not yet" rather than guess.
    SHARDING_ASKS: tuple[dict[str, Any], ...] = (
        {"chunks": (CHUNK,) * 3, "sharding": {"shard_shape": [CHUNK * PER_SHARD] * 3}},
        {"chunks": (CHUNK * PER_SHARD,) * 3, "sharding": {"chunk_shape": [CHUNK] * 3}},
        {"chunks": (CHUNK,) * 3, "sharding": True},
    )

    def __init__(self, threads: int | None) -> None:
        import bigarrays

        self.ba = bigarrays
        self.threads = threads
        self.default_threads: int | None = None
        self.sharding: dict[str, Any] | None = None
        self.no_sharding: str | None = None
        self.probed = False

    def _probe_sharding(self, shape: tuple[int, ...]) -> None:
        self.probed = True
        root = tempfile.mkdtemp(prefix="bigarrays-zarr-probe-")
        why = "no way of asking gave 8³-chunk shards"
        try:
            for ask in self.SHARDING_ASKS:
                path = os.path.join(root, "probe")
                try:
                    vol = self.ba.create(path, shape=shape, dtype="uint8", format="zarr",
                                         overwrite=True, progress=False, **ask)  # fmt: skip
                    vol.close()
                except Exception as e:  # a probe: whatever it raises means "not this way"
                    why = f"{type(e).__name__}: {e}"
                    continue
                if sharded_as_asked(path):
                    self.sharding = ask
                    return
        finally:
            shutil.rmtree(root, ignore_errors=True)
        self.no_sharding = why

    def supports(self, case: Case) -> str | None:
        if not case.sharded:
            return None
        if not self.probed:
            self._probe_sharding((shard_edge(),) * 3)
        if self.sharding is None:
            return f"bigarrays/sharded: n/a (not yet); ba.create(sharding=...): {self.no_sharding}"
        return None

    def settings(self) -> str:
        threads = self.threads or self.default_threads
        how = "--threads" if self.threads else "default"
        shard = f"sharded as {self.sharding}" if self.sharding else "no sharded Zarr yet"
        return (
            f"ba.create(path, format='zarr', chunks=(64, 64, 64), compression=None|'zstd', "
            f"compression_level={ZSTD_LEVEL}), ba.open(path); threads={threads} ({how}); {shard}"
        )

    def create(self, path: str, shape: tuple[int, ...], case: Case) -> Any:
        ask: dict[str, Any] = {"chunks": (CHUNK,) * 3}
        if case.sharded:
            assert self.sharding is not None
            ask = self.sharding
        vol = self.ba.create(
            path, shape=shape, dtype=case.dtype, format="zarr",
            compression="zstd" if case.codec == "zstd" else None,
            compression_level=ZSTD_LEVEL if case.codec == "zstd" else None,
            overwrite=True, threads=self.threads, progress=False, **ask,
        )  # fmt: skip
        self.default_threads = vol.threads
        return vol

    def write(self, handle: Any, data: np.ndarray) -> None:
        handle[...] = data

    def open(self, path: str) -> Any:
        return self.ba.open(path, threads=self.threads, progress=False)

    def read(self, handle: Any, box: Box) -> np.ndarray:
        (z0, z1), (y0, y1), (x0, x1) = box
        out: np.ndarray = handle[z0:z1, y0:y1, x0:x1]
        return out

    def close(self, handle: Any) -> None:
        handle.close()


class ZarrPython(ZTool):
    name = "zarr"

    def __init__(self, threads: int | None) -> None:
        import zarr

        self.zarr = zarr
        if threads:
            zarr.config.set({"async.concurrency": threads, "threading.max_workers": threads})

    def settings(self) -> str:
        cfg = self.zarr.config
        return (
            f"zarr.create_array(LocalStore, chunks=(64, 64, 64), shards=(512, 512, 512) when "
            f"sharded, filters=None, compressors=None|ZstdCodec(level={ZSTD_LEVEL})), "
            f"zarr.open_array(mode='r'); async.concurrency={cfg.get('async.concurrency')}, "
            f"threading.max_workers={cfg.get('threading.max_workers')}, "
            f"write_empty_chunks={cfg.get('array.write_empty_chunks')}"
        )

    def create(self, path: str, shape: tuple[int, ...], case: Case) -> Any:
        from zarr.codecs import ZstdCodec

        return self.zarr.create_array(
            store=path, shape=shape, dtype=case.dtype, chunks=(CHUNK,) * 3,
            shards=(shard_edge(),) * 3 if case.sharded else None, filters=None,
            compressors=ZstdCodec(level=ZSTD_LEVEL) if case.codec == "zstd" else None,
            fill_value=0, zarr_format=3, overwrite=True,
        )  # fmt: skip

    def write(self, handle: Any, data: np.ndarray) -> None:
        handle[...] = data

    def open(self, path: str) -> Any:
        return self.zarr.open_array(path, mode="r")

    def read(self, handle: Any, box: Box) -> np.ndarray:
        (z0, z1), (y0, y1), (x0, x1) = box
        return np.asarray(handle[z0:z1, y0:y1, x0:x1])


class TensorStoreZarr3(ZTool):
    name = "tensorstore"

    def __init__(self, threads: int | None) -> None:
        import tensorstore

        self.ts = tensorstore
        self.threads = threads

    def _context(self) -> Any:
        # The cache pool is off (its documented default, spelled out): every read goes to disk.
        spec: dict[str, Any] = {"cache_pool": {"total_bytes_limit": 0}}
        if self.threads:
            spec["file_io_concurrency"] = {"limit": self.threads}
            spec["data_copy_concurrency"] = {"limit": self.threads}
        return self.ts.Context(spec)

    def settings(self) -> str:
        conc = (
            f"file_io_concurrency={self.threads}, data_copy_concurrency={self.threads}"
            if self.threads
            else "file_io_concurrency and data_copy_concurrency at their defaults"
        )
        return (
            f"zarr3 driver, file kvstore, cache_pool total_bytes_limit=0, {conc}; sharded = "
            "sharding_indexed (index at the end, bytes + crc32c), one write() per volume"
        )

    def create(self, path: str, shape: tuple[int, ...], case: Case) -> Any:
        inner: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
        if case.codec == "zstd":
            inner.append({"name": "zstd", "configuration": {"level": ZSTD_LEVEL}})
        codecs, grid = inner, [CHUNK] * 3
        if case.sharded:
            grid = [shard_edge()] * 3
            index = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
            codecs = [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": [CHUNK] * 3, "codecs": inner, "index_codecs": index,
                "index_location": "end"}}]  # fmt: skip
        spec = {
            "driver": "zarr3",
            "kvstore": {"driver": "file", "path": path + "/"},
            "metadata": {
                "shape": list(shape),
                "data_type": case.dtype,
                "fill_value": 0,
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
                "chunk_key_encoding": {"name": "default"},
                "codecs": codecs,
            },
        }
        return self.ts.open(
            spec, create=True, delete_existing=True, context=self._context()
        ).result()

    def write(self, handle: Any, data: np.ndarray) -> None:
        # .result() of a write waits for the commit: the chunks are in their files.
        handle.write(data).result()

    def open(self, path: str) -> Any:
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path + "/"}}
        return self.ts.open(spec, open=True, read=True, context=self._context()).result()

    def read(self, handle: Any, box: Box) -> np.ndarray:
        (z0, z1), (y0, y1), (x0, x1) = box
        out: np.ndarray = handle[z0:z1, y0:y1, x0:x1].read().result()
        return out


def make_tool(name: str, threads: int | None) -> ZTool:
    kinds: dict[str, type[Any]] = {
        "bigarrays": BigArraysZarr, "zarr": ZarrPython, "tensorstore": TensorStoreZarr3,
    }  # fmt: skip
    tool: ZTool = kinds[name](threads)
    return tool
