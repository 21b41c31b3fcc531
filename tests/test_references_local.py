"""Local targets of a reference store: one descriptor per file for every chunk read, closed with
the store; short reads are read on; what cannot be opened goes through the file store."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bigarrays.errors import BrokenReferenceError
from bigarrays.refs.local import LocalFiles
from bigarrays.stores.reference import ReferenceStore

DATA = np.arange(12 * 10, dtype="<u2").reshape(12, 10)


def _store(tmp_path: Path, target: str = "blob.bin") -> ReferenceStore:
    """Three chunks of four rows of DATA in ``blob.bin``, referenced as ``0.0``, ``1.0``,
    ``2.0`` of ``target`` (relative to the references)."""
    (tmp_path / "blob.bin").write_bytes(DATA.tobytes())
    row = DATA[0].nbytes
    refs: dict[str, Any] = {f"{i}.0": [target, 4 * i * row, 4 * row] for i in range(3)}
    refs[".zarray"] = json.dumps({
        "zarr_format": 2, "shape": [12, 10], "chunks": [4, 10], "dtype": "<u2",
        "compressor": None, "fill_value": 0, "order": "C", "filters": None,
    })  # fmt: skip
    (tmp_path / "refs.json").write_text(json.dumps({"version": 1, "refs": refs}))
    return ReferenceStore(f"reference://{tmp_path / 'refs.json'}")


def test_chunks_of_a_local_file_share_one_descriptor_closed_with_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[str, int]] = []
    real_open = os.open

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, *args, **kwargs)
        opened.append((os.fspath(path), fd))
        return fd

    store = _store(tmp_path)
    monkeypatch.setattr(os, "open", counting_open)
    for _ in range(2):
        for i in range(3):
            assert store.get(f"{i}.0") == DATA[4 * i : 4 * i + 4].tobytes()
    monkeypatch.undo()
    assert [path for path, _ in opened] == [str(tmp_path / "blob.bin")]
    fd = opened[0][1]
    assert os.fstat(fd).st_size == DATA.nbytes  # still open
    store.close()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)


def test_a_target_that_is_not_a_file_is_a_broken_reference(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    store = _store(tmp_path, target="folder")
    with pytest.raises(BrokenReferenceError, match=r"0\.0"):
        store.get("0.0")
    with pytest.raises(BrokenReferenceError, match=r"1\.0"):
        _store(tmp_path, target="gone.bin").get("1.0")


def test_a_truncated_target_is_a_broken_reference(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.get("0.0") == DATA[:4].tobytes()  # the descriptor is open
    with open(tmp_path / "blob.bin", "r+b") as f:
        f.truncate(DATA[:9].nbytes)
    with pytest.raises(BrokenReferenceError, match=r"2\.0.*ends after 20 of them"):
        store.get("2.0")
    store.close()


def test_short_reads_are_read_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").write_bytes(bytes(range(200)))
    files = LocalFiles()
    fd = files.fd(str(tmp_path / "f"))
    assert fd is not None
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: real_pread(fd, min(n, 7), at))
    assert files.read(fd, 10, 100) == bytes(range(10, 110))
    assert files.read(fd, 190, 100) == bytes(range(190, 200))
    assert files.read(fd, 300, 100) == b""
    files.close()
