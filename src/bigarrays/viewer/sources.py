"""What the viewer's server serves under ``/<token>/data/<source>/``: a :class:`Source` per
registered dataset or array, each answering by key.

A :class:`DatasetSource` serves the keys of a BigArray's store read-only, whatever the format
and backend (local, zip, LMDB, S3 or GCS with the caller's credentials, memory): Neuroglancer
reads precomputed volumes (sharded too) and Zarr v2 / v3 arrays and OME-Zarr images straight
from them. In-memory arrays are served by :mod:`bigarrays.viewer.memory_source`.
"""

from __future__ import annotations

import abc
import json
import warnings
from collections.abc import Container
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bigarrays.errors import ViewerCompatibilityWarning
from bigarrays.stores import Store
from bigarrays.stores.content_encoding import ANY_ENCODING, SUFFIXES
from bigarrays.stores.keys import is_outside, normalize_key

if TYPE_CHECKING:
    from bigarrays.array import BigArray

#: Neuroglancer's data source scheme for each of our format names.
SCHEMES = {"precomputed": "precomputed", "zarr": "zarr3", "zarr2": "zarr2"}

#: Keys whose values are JSON documents (metadata), by their last path segment.
_JSON_NAMES = ("info", "zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")


@dataclass(frozen=True)
class Reply:
    """A value to send: its bytes, their ``Content-Type``, and their ``Content-Encoding``."""

    body: bytes | memoryview
    content_type: str = "application/octet-stream"
    encoding: str | None = None


def content_type(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if name in _JSON_NAMES or name.endswith(".json"):
        return "application/json"
    return "application/octet-stream"


class Source(abc.ABC):
    """A registered dataset as the server sees it: keys to bytes."""

    #: Neuroglancer's data source scheme ("precomputed", "zarr3", "zarr2").
    scheme: str = "precomputed"
    #: "image" or "segmentation": the layer the viewer makes of it.
    layer_type: str = "image"

    @abc.abstractmethod
    def get(self, key: str, accept: Container[str]) -> Reply | None:
        """The value of ``key``, transfer-encoded only with an encoding in ``accept`` (what the
        client's ``Accept-Encoding`` names); None when there is none."""

    def size(self, key: str) -> int | None:
        """Bytes of the plain value of ``key`` (what a range is taken of); None if missing."""
        reply = self.get(key, ())
        return None if reply is None else len(reply.body)

    def get_range(self, key: str, start: int, stop: int | None) -> bytes | None:
        """Bytes ``[start, stop)`` of the plain value of ``key`` (``stop`` None: to its end),
        fewer past its end; None if missing."""
        reply = self.get(key, ())
        return None if reply is None else bytes(reply.body[start:stop])

    def refresh(self) -> None:  # noqa: B027 - an optional hook
        """Forget whatever was derived from the data (new data will be served)."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release what the source holds; the server no longer serves it."""


class DatasetSource(Source):
    """The store of a BigArray, served key by key as stored.

    A value stored with a transfer encoding (a precomputed volume's gzip chunks, ``KEY.gz`` on a
    disk or a ``Content-Encoding`` on S3) is sent as stored with that ``Content-Encoding`` when
    the client takes it, so the browser decompresses it; otherwise it is decoded here.

    A precomputed scale kept beside the dataset (key ``../other/8_8_8``, opened with
    ``allow_parent_keys=True``) is served under an alias, ``.../other/8_8_8``, in the info and
    in the chunk URLs: the browser would resolve ``..`` itself and ask for a path outside the
    source, which the server refuses.
    """

    def __init__(self, vol: BigArray) -> None:
        self.vol = vol
        self.store: Store = vol.store
        self.scheme = SCHEMES.get(vol.format, vol.format)
        self.layer_type = vol.layer_type
        #: Scale key prefix -> the transfer encoding its chunks are stored with, where the
        #: precomputed info records it: such a chunk is then found in one lookup (KEY.gz).
        self.encodings: dict[str, str | None] = {}
        #: Alias prefix -> the scale key prefix outside the dataset it stands for.
        self.aliases: dict[str, str] = {}
        if vol.format == "precomputed":
            for mip in range(vol.mips):
                with vol.at_mip(mip) as level:
                    scale = level.scale
                key = normalize_key(scale.key)
                if is_outside(key):
                    self.aliases[_alias(key) + "/"] = key + "/"
                if scale.sharding is None and scale.compression in SUFFIXES:
                    self.encodings[scale.key.strip("/") + "/"] = scale.compression
                if scale.compression not in (None, *SUFFIXES):
                    warnings.warn(
                        f"{vol.url}: scale {scale.key!r} is compressed with {scale.compression}, "
                        "which Neuroglancer cannot read (it reads gzip, br and zstd transfer "
                        "compression); convert it with `bigarrays cp` to view it",
                        ViewerCompatibilityWarning,
                        stacklevel=4,
                    )

    def _hint(self, key: str) -> str | None:
        for prefix, encoding in self.encodings.items():
            if key.startswith(prefix):
                return encoding
        return ANY_ENCODING

    def _key(self, key: str) -> str:
        """The store key an alias in ``key`` stands for (``key`` itself if it holds none)."""
        for alias, real in self.aliases.items():
            if key.startswith(alias):
                return real + key[len(alias) :]
        return key

    def _info(self) -> Reply | None:
        """The info, its scales outside the dataset renamed to their aliases."""
        plain = self.store.get("info")
        if plain is None:
            return None
        info = json.loads(plain)
        for scale in info.get("scales", []):
            key = normalize_key(str(scale.get("key", "")))
            if is_outside(key):
                scale["key"] = _alias(key)
        return Reply(json.dumps(info).encode(), "application/json")

    def get(self, key: str, accept: Container[str]) -> Reply | None:
        if self.aliases and key == "info":
            return self._info()
        key = self._key(key)
        kind = content_type(key)
        found = self.store.get_encoded(key, encoding=self._hint(key))
        if found is None:
            return None
        body, encoding = found
        if encoding is not None and encoding not in accept:
            plain = self.store.get(key, encoding=encoding)
            return None if plain is None else Reply(plain, kind)
        return Reply(body, kind, encoding)

    def size(self, key: str) -> int | None:
        if self.aliases and key == "info":
            return super().size(key)
        return self.store.size(self._key(key))

    def get_range(self, key: str, start: int, stop: int | None) -> bytes | None:
        if self.aliases and key == "info":
            return super().get_range(key, start, stop)
        length = None if stop is None else stop - start
        return self.store.get_range(self._key(key), start, length)


def _alias(key: str) -> str:
    """``key`` (normalized, outside the dataset) with each ``..`` segment as ``...``: a name
    browsers leave as it is, and no key a precomputed info names."""
    return "/".join("..." if part == ".." else part for part in key.split("/"))
