"""Index a zip archive of a dataset: each stored entry is one byte range of the zip.

``zipfile`` reads the central directory (through ranged reads); each entry's data starts after
its local header, whose name and extra field lengths are read from the header itself (they may
differ from the central directory's). Stored entries become targets. A deflated entry's bytes
are a raw deflate stream that no reader of the dataset expects, so it cannot be a target: small
ones (metadata documents, up to ``inline_bytes`` once inflated) are read, inflated and kept
inline; larger ones are reported (``zip -0`` or ``bigarrays cp`` make a zip of stored entries).
"""

from __future__ import annotations

import struct
import zipfile
from typing import Any

from bigarrays.errors import InvalidReferencesError
from bigarrays.refs.model import References, Target
from bigarrays.refs.ranged import RangedFile, open_file_store
from bigarrays.refs.tar import dataset_root

_LOCAL = struct.Struct("<4s22xHH")
#: Deflated entries up to this size (inflated) are kept inline.
INLINE_BYTES = 1 << 16


def index_zip(url: str, *, inline_bytes: int = INLINE_BYTES, **options: Any) -> References:
    """References to the dataset inside the zip at ``url`` (keys relative to its root folder).
    ``options`` open the zip's store."""
    store, name = open_file_store(url, **options)
    out = References()
    try:
        f = RangedFile(store, name)
        with zipfile.ZipFile(f) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            root = dataset_root([i.filename for i in infos])
            head = f"{root}/" if root else ""
            for info in infos:
                if root is not None and not info.filename.startswith(head):
                    continue
                key = info.filename[len(head) :]
                if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1:
                    sig, n, m = _LOCAL.unpack(f.read_at(info.header_offset, _LOCAL.size))
                    if sig != b"PK\x03\x04":
                        raise InvalidReferencesError(
                            f"{url}: entry {info.filename!r} has no local header at offset "
                            f"{info.header_offset}"
                        )
                    start = info.header_offset + _LOCAL.size + n + m
                    out.refs[key] = Target(url, start, info.compress_size)
                elif info.file_size <= inline_bytes and not info.flag_bits & 1:
                    out.refs[key] = zf.read(info)
                else:
                    how = "encrypted" if info.flag_bits & 1 else "compressed"
                    out.skipped.append((info.filename, f"{how} entry of {info.file_size} bytes: "
                                        "only stored entries can be referenced"))  # fmt: skip
        if root is None:
            out.skipped.append((url, "no dataset in the zip (no info, zarr.json, .zarray or "
                                     ".zgroup)"))  # fmt: skip
        return out
    finally:
        store.close()
