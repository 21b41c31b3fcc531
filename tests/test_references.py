"""The reference store: kerchunk JSON v0 / v1 and the Parquet layout, read through targets on
files, HTTP and S3; corrupt references give typed errors; writes are refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import (
    BrokenReferenceError,
    CorruptChunkError,
    InvalidReferencesError,
    ReadOnlyError,
)
from bigarrays.refs import References, Target, write_references
from bigarrays.stores import open_store
from bigarrays.stores.reference import ReferenceStore

CHUNKS = (4, 5)
DATA = np.arange(8 * 10, dtype="<u2").reshape(8, 10)


def _zarray(**extra: object) -> str:
    doc = {"zarr_format": 2, "shape": [8, 10], "chunks": list(CHUNKS), "dtype": "<u2",
           "compressor": None, "fill_value": 7, "order": "C", "filters": None, **extra}  # fmt: skip
    return json.dumps(doc)


def _blob(tmp_path: Path, skip: tuple[tuple[int, int], ...] = ()) -> dict[str, list[object]]:
    """Every chunk of DATA in one file, each after 4 bytes of padding; their references, the
    chunks in ``skip`` left out."""
    refs: dict[str, list[object]] = {}
    out = bytearray()
    for i in range(2):
        for j in range(2):
            chunk = DATA[i * 4 : i * 4 + 4, j * 5 : j * 5 + 5]
            if (i, j) not in skip:
                refs[f"{i}.{j}"] = [str(tmp_path / "blob.bin"), len(out) + 4, chunk.nbytes]
            out += b"HEAD" + chunk.tobytes()
    (tmp_path / "blob.bin").write_bytes(bytes(out))
    return refs


def _write(tmp_path: Path, doc: object, name: str = "refs.json") -> str:
    (tmp_path / name).write_text(json.dumps(doc))
    return f"reference://{tmp_path / name}"


def test_version_1_with_templates_inline_and_base64(tmp_path: Path) -> None:
    refs = _blob(tmp_path)
    for value in refs.values():
        value[0] = "{{u}}"
    refs[".zarray"] = _zarray()  # type: ignore[assignment]
    refs[".zattrs"] = "base64:" + base64.b64encode(b'{"a": 1}').decode()  # type: ignore[assignment]
    url = _write(tmp_path, {"version": 1, "templates": {"u": str(tmp_path / "blob.bin")},
                            "refs": refs})  # fmt: skip
    vol = ba.open(url)
    assert vol.format == "zarr2"
    np.testing.assert_array_equal(vol[:, :], DATA)
    assert ReferenceStore(url).get(".zattrs") == b'{"a": 1}'


def test_version_0_and_relative_targets(tmp_path: Path) -> None:
    refs: dict[str, object] = dict(_blob(tmp_path))
    for value in refs.values():
        value[0] = "blob.bin"  # type: ignore[index]
    refs[".zarray"] = json.loads(_zarray())  # a JSON object, as kerchunk v0 writers leave it
    vol = ba.open(_write(tmp_path, refs))
    np.testing.assert_array_equal(vol[:, :], DATA)


def test_gen_entries_render_keys_and_ranges(tmp_path: Path) -> None:
    data = np.arange(4 * 10, dtype="<u2").reshape(4, 10)
    (tmp_path / "rows.bin").write_bytes(data.tobytes())
    doc = {
        "version": 1,
        "templates": {"f": str(tmp_path / "rows.bin")},
        "refs": {
            ".zarray": json.dumps({**json.loads(_zarray()), "shape": [4, 10], "chunks": [1, 10]})
        },
        "gen": [
            {
                "key": "{{i}}.0",
                "url": "{{f}}",
                "offset": "{{ i * 20 }}",
                "length": "20",
                "dimensions": {"i": {"stop": 4}},
            }
        ],
    }
    vol = ba.open(_write(tmp_path, doc))
    np.testing.assert_array_equal(vol[:, :], data)


def test_missing_references_read_as_the_fill_value(tmp_path: Path) -> None:
    refs: dict[str, object] = dict(_blob(tmp_path, skip=((1, 1),)))
    refs[".zarray"] = _zarray()
    vol = ba.open(_write(tmp_path, {"version": 1, "refs": refs}))
    expected = DATA.copy()
    expected[4:, 5:] = 7
    np.testing.assert_array_equal(vol[:, :], expected)
    assert sorted(ReferenceStore(_write(tmp_path, {"version": 1, "refs": refs})).list("")) == [
        ".zarray", "0.0", "0.1", "1.0",
    ]  # fmt: skip


@pytest.mark.parametrize("problem", ["past_end", "wrong_length", "no_file"])
def test_corrupt_references_give_typed_errors(tmp_path: Path, problem: str) -> None:
    refs: dict[str, object] = dict(_blob(tmp_path))
    size = (tmp_path / "blob.bin").stat().st_size
    if problem == "past_end":
        refs["1.1"] = [str(tmp_path / "blob.bin"), size - 10, 40]
    elif problem == "wrong_length":
        refs["1.1"][2] = 38  # type: ignore[index]
    else:
        refs["1.1"] = [str(tmp_path / "gone.bin"), 0, 40]
    refs[".zarray"] = _zarray()
    vol = ba.open(_write(tmp_path, {"version": 1, "refs": refs}))
    np.testing.assert_array_equal(vol[0:4, 0:5], DATA[0:4, 0:5])
    error = BrokenReferenceError if problem != "wrong_length" else CorruptChunkError
    with pytest.raises(error, match=r"1\.1"):
        vol[4:8, 5:10]


@pytest.mark.parametrize(
    "doc",
    [[1, 2], {"version": 3, "refs": {}}, {"version": 1, "refs": {"a": [1, 2, 3]}},
     {"version": 1, "refs": {"a": ["f", -1, 3]}}, {"a": "base64:@@@"}],
)  # fmt: skip
def test_malformed_documents_are_refused(tmp_path: Path, doc: object) -> None:
    with pytest.raises(InvalidReferencesError):
        ReferenceStore(_write(tmp_path, doc))


def test_writes_are_refused_with_a_hint_to_copy(tmp_path: Path) -> None:
    refs: dict[str, object] = dict(_blob(tmp_path))
    refs[".zarray"] = _zarray()
    url = _write(tmp_path, {"version": 1, "refs": refs})
    store = open_store(url)
    for attempt in (lambda: store.put("0.0", b"x"), lambda: store.delete("0.0")):
        with pytest.raises(ReadOnlyError, match="bigarrays cp"):
            attempt()
    with pytest.raises(ReadOnlyError, match="bigarrays cp"):
        ba.open(url, mode="r+")


def test_get_many_merges_neighbouring_ranges(tmp_path: Path) -> None:
    refs: dict[str, object] = dict(_blob(tmp_path))
    refs[".zarray"] = _zarray()
    store = ReferenceStore(_write(tmp_path, {"version": 1, "refs": refs}))
    target, _name = store._target(str(tmp_path / "blob.bin"))
    calls: list[tuple[int, int]] = []
    original = target._get_spans

    def counting(key: str, spans: Any, *args: Any) -> list[bytes | None]:
        calls.extend((s.start, s.length) for s in spans)
        return original(key, spans, *args)

    target._get_spans = counting  # type: ignore[method-assign]
    got = store.get_many(["0.0", "0.1", "1.0", "1.1", ".zarray", "9.9"])
    assert len(calls) == 1  # four chunks 4 bytes apart: one read
    assert got["0.1"] == DATA[0:4, 5:10].tobytes()
    assert got["9.9"] is None
    assert got[".zarray"] == _zarray().encode()


def test_parquet_layout_round_trip(tmp_path: Path) -> None:
    refs = References()
    raw = json.loads(json.dumps(_blob(tmp_path, skip=((0, 1),))))
    for key, (url, offset, length) in raw.items():
        refs.refs[f"arr/{key}"] = Target(url, offset, length)
    refs.refs["arr/1.1"] = DATA[4:8, 5:10].tobytes()  # inline
    refs.refs["arr/.zarray"] = _zarray().encode()
    refs.refs[".zgroup"] = b'{"zarr_format": 2}'
    write_references(refs, str(tmp_path / "refs.parquet"), record_size=3)
    assert sorted(p.name for p in (tmp_path / "refs.parquet" / "arr").iterdir()) == [
        "refs.0.parq", "refs.1.parq",
    ]  # fmt: skip
    vol = ba.open(f"reference://{tmp_path / 'refs.parquet'}#arr")
    expected = DATA.copy()
    expected[0:4, 5:10] = 7
    np.testing.assert_array_equal(vol[:, :], expected)
    store = ReferenceStore(f"reference://{tmp_path / 'refs.parquet'}")
    assert sorted(store.list("arr/")) == ["arr/.zarray", "arr/0.0", "arr/1.0", "arr/1.1"]
    (tmp_path / "refs.parquet" / "arr" / "refs.1.parq").write_bytes(b"PAR1 not really")
    with pytest.raises(InvalidReferencesError, match=r"refs\.1\.parq"):
        ba.open(f"reference://{tmp_path / 'refs.parquet'}/arr")[:, :]


def test_targets_over_http(tmp_path: Path) -> None:
    from network_servers import served_folder

    with served_folder() as (root, server):
        refs: dict[str, object] = dict(_blob(root))
        for value in refs.values():
            value[0] = f"{server.url}/blob.bin"  # type: ignore[index]
        refs[".zarray"] = _zarray()
        (root / "refs.json").write_text(json.dumps({"version": 1, "refs": refs}))
        vol = ba.open(f"reference://{server.url}/refs.json")
        np.testing.assert_array_equal(vol[:, :], DATA)


def test_targets_on_s3(tmp_path: Path, s3_bucket: str) -> None:
    refs: dict[str, object] = dict(_blob(tmp_path))
    s3 = open_store(f"s3://{s3_bucket}/data")
    s3.put("blob.bin", (tmp_path / "blob.bin").read_bytes())
    for value in refs.values():
        value[0] = f"s3://{s3_bucket}/data/blob.bin"  # type: ignore[index]
    refs[".zarray"] = _zarray()
    vol = ba.open(_write(tmp_path, {"version": 1, "refs": refs}))
    np.testing.assert_array_equal(vol[:, :], DATA)


def test_chunk_reads_from_http_are_merged(tmp_path: Path) -> None:
    from network_servers import served_folder

    data = np.arange(64 * 50, dtype="<u2").reshape(64, 50)
    with served_folder() as (root, server):
        refs: dict[str, object] = {".zarray": _zarray(shape=[64, 50])}
        blob = bytearray()
        for i in range(16):
            for j in range(10):
                chunk = data[i * 4 : i * 4 + 4, j * 5 : j * 5 + 5].tobytes()
                refs[f"{i}.{j}"] = [f"{server.url}/blob.bin", len(blob) + 4, len(chunk)]
                blob += b"HEAD" + chunk
        (root / "blob.bin").write_bytes(bytes(blob))
        (root / "refs.json").write_text(json.dumps({"version": 1, "refs": refs}))
        vol = ba.open(f"reference://{server.url}/refs.json", threads=4)
        before = server.faults.requests
        np.testing.assert_array_equal(vol[:, :], data)
        assert server.faults.requests - before <= 4  # 160 chunks, 7 KiB apart at most
        # A reference past the end of the file still fails alone, when its key is read.
        refs["15.9"] = [f"{server.url}/blob.bin", len(blob) - 10, 40]
        (root / "refs.json").write_text(json.dumps({"version": 1, "refs": refs}))
        vol = ba.open(f"reference://{server.url}/refs.json", threads=4)
        np.testing.assert_array_equal(vol[0:60, :], data[0:60])
        with pytest.raises(BrokenReferenceError, match=r"15\.9"):
            vol[60:64, 45:50]


def test_a_path_below_the_document_is_a_path_inside_it(tmp_path: Path) -> None:
    import pickle

    refs = References()
    for key, (url, offset, length) in _blob(tmp_path).items():
        refs.refs[f"g/arr/{key}"] = Target(str(url), int(offset), int(length))  # type: ignore[call-overload]
    refs.refs["g/arr/.zarray"] = _zarray().encode()
    write_references(refs, str(tmp_path / "refs.json"))
    for url in (
        f"reference://{tmp_path}/refs.json/g/arr",
        f"reference://{tmp_path}/refs.json#g/arr",
    ):
        store = pickle.loads(pickle.dumps(open_store(url)))
        np.testing.assert_array_equal(ba.open(store)[:, :], DATA)


def test_store_options_reach_targets_of_the_same_scheme(
    tmp_path: Path, s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs: dict[str, object] = dict(_blob(tmp_path))
    bucket = open_store(f"s3://{s3_bucket}/data")
    bucket.put("blob.bin", (tmp_path / "blob.bin").read_bytes())
    for value in refs.values():
        value[0] = f"s3://{s3_bucket}/data/blob.bin"  # type: ignore[index]
    refs[".zarray"] = _zarray()
    bucket.put("refs.json", json.dumps({"version": 1, "refs": refs}).encode())
    # Only the option given to open reaches moto: the environment points nowhere.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    vol = ba.open(f"reference://s3://{s3_bucket}/data/refs.json", endpoint=moto_endpoint)
    np.testing.assert_array_equal(vol[:, :], DATA)
