"""``put_parts`` on the single-file and object stores: a value given in pieces (a shard of
chunks) is stored without being joined into one buffer (zip, S3, GCS), or joined once (LMDB,
which stores a value from one buffer), and reads back whole."""

from __future__ import annotations

import gzip
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bigarrays.errors import VersionConflictError
from bigarrays.stores import Store, open_store
from bigarrays.stores.gcs import GCSStore
from bigarrays.stores.parts import cut_parts
from bigarrays.stores.s3 import S3Store

MiB = 1 << 20


def pieces(total: int, n: int) -> list[np.ndarray]:
    """``n`` distinct arrays of ``total`` bytes together (uint16, as a shard's chunks are)."""
    rng = np.random.default_rng(3)
    return [rng.integers(0, 65535, total // n // 2, dtype=np.uint16) for _ in range(n)]


def peak_of(fn: Callable[[], Any]) -> int:
    """The most bytes Python allocated at once while ``fn`` ran, beyond what it held before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_cut_parts_cuts_pieces_end_to_end() -> None:
    views = [memoryview(b) for b in (b"abc", b"", b"defgh", b"i")]
    assert list(cut_parts(views, 4)) == [b"abcd", b"efgh", b"i"]
    assert list(cut_parts(views, 9)) == [b"abcdefghi"]
    wide = memoryview(np.arange(3, dtype=np.uint16))  # not bytes: cut by its bytes
    assert b"".join(cut_parts([wide], 4)) == np.arange(3, dtype=np.uint16).tobytes()


def test_a_zip_entry_is_written_from_its_pieces(tmp_path: Path) -> None:
    path = tmp_path / "s.zip"
    store = open_store(str(path))
    parts = pieces(32 * MiB, 8)
    store.put("a", b"x")
    peak = peak_of(lambda: store.put_parts("shard/0", parts))
    assert peak < 4 * MiB  # joined, it would be 32 MiB
    assert store.get("shard/0") == b"".join(p.tobytes() for p in parts)
    version = store.get_with_version("shard/0")[1]
    with pytest.raises(VersionConflictError):
        store.put_parts("shard/0", parts[:1], mode="create")
    assert store.put_parts("shard/0", parts[:2], mode="if_version", version=version)
    store.close()
    with zipfile.ZipFile(path) as archive:  # the CRC of the pieces is the entry's
        assert archive.testzip() is None
        assert archive.read("shard/0") == b"".join(p.tobytes() for p in parts[:2])


def test_a_zip_entry_of_more_pieces_than_one_write_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bigarrays.stores import zip_archive

    monkeypatch.setattr(zip_archive, "_IOV_MAX", 3)
    store = open_store(str(tmp_path / "s.zip"))
    parts = [bytes([i]) * (i + 1) for i in range(10)]
    store.put_parts("k", parts)
    assert store.get("k") == b"".join(parts)
    store.close()


def test_lmdb_joins_the_pieces_once(tmp_path: Path) -> None:
    pytest.importorskip("lmdb")
    store = open_store(f"lmdb://{tmp_path / 'db.lmdb'}")
    parts = pieces(32 * MiB, 8)
    peak = peak_of(lambda: store.put_parts("shard/0", parts))
    assert peak < 48 * MiB  # one copy of 32 MiB; the value was copied twice before
    assert store.get("shard/0") == b"".join(p.tobytes() for p in parts)
    store.close()


def test_s3_uploads_a_value_in_pieces_part_by_part(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = 5 * MiB  # the smallest part S3 takes
    monkeypatch.setattr(S3Store, "PART_SIZE", part)
    store = open_store(f"s3://{s3_bucket}/p")
    assert isinstance(store, S3Store)
    sizes: list[int] = []
    real = store.client().s3.upload_part

    def upload_part(**kwargs: Any) -> Any:
        sizes.append(len(kwargs["Body"]))
        return real(**kwargs)

    monkeypatch.setattr(store.client().s3, "upload_part", upload_part)
    parts = pieces(24 * MiB, 6)
    peak = peak_of(lambda: store.put_parts("shard/0", parts))
    assert sizes == [part] * 4 + [4 * MiB]
    assert peak < 16 * MiB  # one part at a time (and what the client holds of it), not 24 MiB
    whole = b"".join(p.tobytes() for p in parts)
    got, version = store.get_with_version("shard/0")
    assert got == whole
    with pytest.raises(VersionConflictError):
        store.put_parts("shard/0", parts, mode="create")
    # moto checks If-None-Match when it completes an upload, not If-Match (S3 checks both):
    # that the upload is completed on the version asked is what is checked here.
    conditions: list[Any] = []
    complete = store.client().s3.complete_multipart_upload

    def completed(**kwargs: Any) -> Any:
        conditions.append(kwargs.get("IfMatch"))
        return complete(**kwargs)

    monkeypatch.setattr(store.client().s3, "complete_multipart_upload", completed)
    assert store.put_parts("shard/0", parts[::-1], mode="if_version", version=version)
    assert conditions == [version]
    assert store.get("shard/0") == b"".join(p.tobytes() for p in parts[::-1])
    # A value of one part or less is one PUT.
    sizes.clear()
    store.put_parts("small", parts[:1])
    assert sizes == []
    assert store.get("small") == parts[0].tobytes()


def test_s3_a_refused_completion_is_a_conflict_and_the_upload_is_aborted(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # S3 answers 412 at completion when If-Match no longer holds (moto never does): the
    # writer gets the conflict it retries on, the parts are dropped, the old value stays.
    from botocore.exceptions import ClientError

    monkeypatch.setattr(S3Store, "PART_SIZE", 5 * MiB)
    store = open_store(f"s3://{s3_bucket}/p")
    assert isinstance(store, S3Store)
    old = pieces(12 * MiB, 3)
    version = store.put_parts("shard/0", old)
    s3 = store.client().s3

    def refused(**kwargs: Any) -> Any:
        error = {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions"}
        raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 412}},
                          "CompleteMultipartUpload")  # fmt: skip

    monkeypatch.setattr(s3, "complete_multipart_upload", refused)
    with pytest.raises(VersionConflictError):
        store.put_parts("shard/0", old[::-1], mode="if_version", version=version)
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert store.get("shard/0") == b"".join(p.tobytes() for p in old)


@pytest.fixture
def gcs_store(gcs_bucket: str, monkeypatch: pytest.MonkeyPatch) -> GCSStore:
    monkeypatch.setattr(GCSStore, "PART_SIZE", 256 * 1024)  # the smallest part GCS takes
    store = open_store(f"gs://{gcs_bucket}/p")
    assert isinstance(store, GCSStore)
    return store


def _sent_parts(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Content-Range of every part of a resumable upload ``store`` sends."""
    ranges: list[str] = []
    pool = store.client().pool  # type: ignore[attr-defined]
    real = pool.request

    def request(method: str, url: str, **kwargs: Any) -> Any:
        if method == "PUT" and "upload_id=" in url:
            ranges.append(kwargs["headers"]["Content-Range"])
        return real(method, url, **kwargs)

    monkeypatch.setattr(pool, "request", request)
    return ranges


def test_gcs_uploads_a_large_value_in_pieces_as_a_resumable_upload(
    gcs_store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranges = _sent_parts(gcs_store, monkeypatch)
    parts = pieces(MiB + 1000, 3)
    whole = b"".join(p.tobytes() for p in parts)
    gcs_store.put_parts("shard/0", parts)
    n = len(whole)
    k = 256 * 1024
    assert ranges == [f"bytes {a}-{min(a + k, n) - 1}/{n}" for a in range(0, n, k)]
    got, version = gcs_store.get_with_version("shard/0")
    assert got == whole
    assert version is not None
    ranges.clear()
    gcs_store.put_parts("small", [b"abc", b"def"])  # one part or less: one upload
    assert ranges == []
    assert gcs_store.get("small") == b"abcdef"


def test_gcs_uploads_parts_from_an_iterator_as_they_come(
    gcs_store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value an iterator makes: an upload of unknown size (``/*``) until its last part, which
    names the size; the first part goes before the iterator has given its last bytes. An
    iterator that fails stores nothing; one no larger than a part is one request."""
    ranges = _sent_parts(gcs_store, monkeypatch)
    parts = pieces(MiB + 1000, 6)
    whole = b"".join(p.tobytes() for p in parts)
    given: list[int] = []
    at_first_part: list[int] = []
    original = gcs_store._send_part

    def send(*args: Any) -> Any:
        at_first_part.append(len(given))
        return original(*args)

    monkeypatch.setattr(gcs_store, "_send_part", send)

    def made(fail: bool = False) -> Any:
        for i, part in enumerate(parts):
            if fail and i == 5:
                raise RuntimeError("the encoder failed")
            given.append(i)
            yield part

    gcs_store.put("shard/0", b"old")
    gcs_store.put_parts("shard/0", made())
    n, k = len(whole), 256 * 1024
    assert ranges == [f"bytes {a}-{min(a + k, n) - 1}/{n if a + k >= n else '*'}"
                      for a in range(0, n, k)]  # fmt: skip
    assert at_first_part[0] < len(parts)
    assert gcs_store.get("shard/0") == whole
    given.clear()
    with pytest.raises(RuntimeError, match="encoder failed"):
        gcs_store.put_parts("shard/0", made(fail=True))
    assert gcs_store.get("shard/0") == whole
    ranges.clear()
    gcs_store.put_parts("small", iter([b"abc", b"def"]))
    assert ranges == []
    assert gcs_store.get("small") == b"abcdef"


def test_gcs_uploads_a_large_encoded_value_as_a_resumable_upload(
    gcs_store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranges = _sent_parts(gcs_store, monkeypatch)
    rng = np.random.default_rng(1)
    value = rng.integers(0, 255, 2 * MiB, dtype=np.uint8).tobytes()
    packed = gzip.compress(value, 1)
    gcs_store.put("big.gz", packed, content_encoding="gzip")
    assert len(ranges) > 1
    assert gcs_store.get("big.gz") == value
    assert gcs_store.get_encoded("big.gz") == (packed, "gzip")


def test_gcs_a_resumable_upload_names_its_precondition(
    gcs_store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator ignores preconditions on resumable uploads (GCS checks them): what is
    checked here is that the session is opened with the one the mode asks for."""
    opened: list[str] = []
    pool = gcs_store.client().pool
    real = pool.request

    def request(method: str, url: str, **kwargs: Any) -> Any:
        if method == "POST" and "uploadType=resumable" in url:
            opened.append(url)
        return real(method, url, **kwargs)

    monkeypatch.setattr(pool, "request", request)
    parts = pieces(MiB, 2)
    gcs_store.put_parts("a", parts, mode="create")
    version = gcs_store.get_with_version("a")[1]
    assert version is not None
    gcs_store.put_parts("a", parts, mode="if_version", version=version)
    gcs_store.put_parts("a", parts)
    assert ["ifGenerationMatch=0" in opened[0], f"ifGenerationMatch={version}" in opened[1],
            "ifGenerationMatch" in opened[2]] == [True, True, False]  # fmt: skip


def test_gcs_a_resumable_upload_refused_at_its_last_part_is_a_conflict(
    gcs_store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GCS checks the precondition again as the object is made, at the last part, and answers
    # 412 (the emulator never does): the writer gets the conflict it retries on.
    import urllib3

    old = pieces(MiB, 2)
    version = gcs_store.put_parts("a", old)
    pool = gcs_store.client().pool
    real = pool.request
    last_part = f"bytes {MiB - 256 * 1024}-{MiB - 1}/{MiB}"

    def request(method: str, url: str, **kwargs: Any) -> Any:
        if method == "PUT" and kwargs.get("headers", {}).get("Content-Range") == last_part:
            return urllib3.HTTPResponse(body=b"", status=412, preload_content=True)
        return real(method, url, **kwargs)

    monkeypatch.setattr(pool, "request", request)
    with pytest.raises(VersionConflictError):
        gcs_store.put_parts("a", old[::-1], mode="if_version", version=version)
    monkeypatch.setattr(pool, "request", real)
    assert gcs_store.get("a") == b"".join(p.tobytes() for p in old)
