"""Index a tar archive where it lies: every member's data is one byte range of the tar.

``tarfile`` reads the headers (ustar, GNU and pax long names) through a :class:`RangedFile`
and seeks past the data, so a tar on S3 or HTTP costs its headers' ranged reads, not a download.
The members of the dataset at the shallowest folder holding an ``info``, ``zarr.json``,
``.zarray`` or ``.zgroup`` become keys relative to that folder; HDF5 members are indexed as
HDF5 files (their datasets as Zarr v2 arrays under the member's name), each chunk a range of the
tar. A compressed tar cannot be referenced (its members' bytes are not stored as such).
"""

from __future__ import annotations

import posixpath
import tarfile
from typing import Any

from bigarrays.errors import UnsupportedError
from bigarrays.refs.model import References, Target
from bigarrays.refs.ranged import RangedFile, open_file_store

#: Files whose name marks the root of a dataset.
MARKERS = ("info", "zarr.json", ".zarray", ".zgroup")
#: Suffixes of HDF5 members, indexed as HDF5 files.
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".nc", ".nc4")

_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZ": "bzip2", b"\xfd7zXZ": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def tar_members(f: RangedFile, url: str) -> list[tuple[str, int, int]]:
    """``(name, data offset, size)`` of every regular file in the tar ``f``."""
    head = f.read_at(0, 6)
    for magic, name in _COMPRESSED.items():
        if head.startswith(magic):
            raise UnsupportedError(
                f"{url} is a {name}-compressed tar: its members are not stored as they are, so "
                "no byte range holds one; decompress it (a plain .tar) to reference it"
            )
    f.seek(0)
    out = []
    with tarfile.open(fileobj=f, mode="r:") as tar:
        for member in tar:
            if member.isreg():
                out.append((member.name, member.offset_data, member.size))
    return out


def dataset_root(names: list[str]) -> str | None:
    """The shallowest folder that holds a dataset's marker file ("" for the top), or None."""
    roots = [posixpath.dirname(n) for n in names if posixpath.basename(n) in MARKERS]
    if not roots:
        return None
    return min(roots, key=lambda r: (r.count("/") if r else -1, r))


def index_tar(url: str, *, hdf5: bool = True, **options: Any) -> References:
    """References to the dataset (and, with ``hdf5``, the HDF5 files) inside the tar at ``url``.

    ``options`` are the options of the store the tar is opened from (credentials, endpoint).
    """
    store, name = open_file_store(url, **options)
    try:
        f = RangedFile(store, name)
        members = tar_members(f, url)
        out = References()
        root = dataset_root([m[0] for m in members])
        head = f"{root}/" if root else ""
        if root is not None:
            for member, offset, size in members:
                if member.startswith(head):
                    out.refs[member[len(head) :]] = Target(url, offset, size)
        if hdf5:
            from bigarrays.refs.hdf5 import index_hdf5_file

            for member, offset, size in members:
                inside = root is not None and member.startswith(head)
                if member.lower().endswith(HDF5_SUFFIXES) and not inside:
                    inner = RangedFile(store, name, offset, size)
                    out.update(index_hdf5_file(inner, url, base=offset, name=member), prefix=member)
        if not out.refs:
            out.skipped.append((url, "no dataset (no info, zarr.json, .zarray or .zgroup) and no "
                                     "HDF5 file among its members"))  # fmt: skip
        return out
    finally:
        store.close()
