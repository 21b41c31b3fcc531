"""Keys never leave the dataset: a scale key with ``..`` in a hostile (or careless) info reaches
nothing beside the store's root unless the caller allows it, on arrays, copies and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.cli import main
from bigarrays.copy import copy_dataset
from bigarrays.errors import BigArraysWarning, KeyOutsideRootError
from bigarrays.stores import open_store
from bigarrays.stores.http import HTTPStore
from network_servers import served_folder

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY-----"


def hostile_dataset(root: Path) -> Path:
    """``root/datasets/src``: one real scale and one keyed ``../../home/.ssh``, beside which
    ``root/home/.ssh/id_rsa`` holds a secret."""
    ssh = root / "home" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_rsa").write_bytes(SECRET)
    src = root / "datasets" / "src"
    ba.create(src, shape=(16, 16, 16), chunks=(8, 8, 8))[...] = 7
    info = json.loads((src / "info").read_text())
    info["scales"].append({**info["scales"][0], "key": "../../home/.ssh"})
    (src / "info").write_text(json.dumps(info))
    return src


def shared_dataset(root: Path) -> tuple[Path, np.ndarray]:
    """``root/vol`` whose only scale lives beside it, in ``root/shared`` (``../shared``)."""
    vol = root / "vol"
    data = np.arange(16**3, dtype=np.uint8).reshape(16, 16, 16)
    ba.create(vol, shape=(16, 16, 16), chunks=(8, 8, 8))[...] = data
    info = json.loads((vol / "info").read_text())
    (vol / info["scales"][0]["key"]).rename(root / "shared")
    info["scales"][0]["key"] = "../shared"
    (vol / "info").write_text(json.dumps(info))
    return vol, data


def test_array_refuses_a_scale_beside_the_dataset_unless_allowed(tmp_path: Path) -> None:
    vol, data = shared_dataset(tmp_path)
    with pytest.raises(KeyOutsideRootError, match="allow_parent_keys"):
        ba.open(vol)[0:8, 0:8, 0:8]
    with pytest.raises(KeyOutsideRootError):
        ba.open(vol, mode="r+")[0:8, 0:8, 0:8] = 1
    allowed = ba.open(vol, mode="r+", allow_parent_keys=True)
    np.testing.assert_array_equal(allowed[...], data)
    allowed[0:8, 0:8, 0:8] = 1
    assert int(ba.open(vol, allow_parent_keys=True)[0:8, 0:8, 0:8].sum()) == 8**3


def test_skip_empty_deletes_nothing_beside_the_dataset(tmp_path: Path) -> None:
    vol, _ = shared_dataset(tmp_path)
    before = sorted(p.name for p in (tmp_path / "shared").iterdir())
    with pytest.raises(KeyOutsideRootError):
        ba.open(vol, mode="r+", skip_empty=True)[...] = 0
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == before


def test_http_store_refuses_keys_beside_its_root() -> None:
    with served_folder() as (root, server):
        (root / "vol").mkdir()
        (root / "vol" / "k").write_bytes(b"inside")
        (root / "secret").write_bytes(SECRET)
        store = HTTPStore(f"{server.url}/vol")
        assert store.get("k") == b"inside"
        calls = {
            "get": lambda: store.get("../secret"),
            "get_range": lambda: store.get_range("../secret", 0, 4),
            "get_ranges": lambda: store.get_ranges("../secret", [(0, 4), (8, 4)]),
            "exists": lambda: store.exists("../secret"),
            "size": lambda: store.size("../secret"),
            "get_encoded": lambda: store.get_encoded("a/../../secret"),
        }
        for call in calls.values():
            with pytest.raises(KeyOutsideRootError):
                call()
        allowed = open_store(f"{server.url}/vol", allow_parent_keys=True)
        assert allowed.get("../secret") == SECRET


def test_cp_to_s3_copies_nothing_from_beside_the_source(s3_bucket: str, tmp_path: Path) -> None:
    # The reported case: an extra scale "../../home/.ssh" put a private key in
    # s3://bucket/home/.ssh/ when the destination was s3://bucket/datasets/ds.
    src = hostile_dataset(tmp_path)
    with pytest.warns(BigArraysWarning, match="home/.ssh"):
        copy_dataset(src, f"s3://{s3_bucket}/datasets/ds", progress=False)
    names = list(open_store(f"s3://{s3_bucket}").list(""))
    assert names
    assert all(n.startswith("datasets/ds/") for n in names), names
    assert int(ba.open(f"s3://{s3_bucket}/datasets/ds")[...].sum()) == 7 * 16**3
    # A destination opened with the option still receives nothing from outside the source.
    dst = open_store(f"s3://{s3_bucket}/datasets/ds2", allow_parent_keys=True)
    with pytest.warns(BigArraysWarning):
        copy_dataset(open_store(src, allow_parent_keys=True), dst, progress=False)
    names = list(open_store(f"s3://{s3_bucket}").list(""))
    assert all(n.startswith(("datasets/ds/", "datasets/ds2/")) for n in names), names


def test_s3_store_refuses_keys_that_climb_within_the_bucket(s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}/datasets/ds")
    for key in ("../../home/.ssh/id_rsa", "../other/x"):
        with pytest.raises(KeyOutsideRootError):
            store.put(key, SECRET)
    assert list(open_store(f"s3://{s3_bucket}").list("")) == []
    beside = open_store(f"s3://{s3_bucket}/datasets/ds", allow_parent_keys=True)
    beside.put("../other/x", b"shared")
    assert open_store(f"s3://{s3_bucket}/datasets/other").get("x") == b"shared"


def test_cli_cp_and_info_stay_inside(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = hostile_dataset(tmp_path / "in")
    dst = tmp_path / "out" / "datasets" / "dst"
    with pytest.warns(BigArraysWarning, match="not copied"):
        assert main(["cp", "-q", str(src), str(dst)]) == 0
    assert not (tmp_path / "out" / "home").exists()
    assert all(SECRET not in p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert main(["info", str(src)]) == 0
    out = capsys.readouterr().out
    assert "not counted: the scale lies outside the dataset" in out
    assert main(["cutout", str(src), "0:16,0:16,0:16", "--mip", "1", "-q",
                 "-o", str(tmp_path / "cut.npy")]) == 1  # fmt: skip
    assert "allow_parent_keys" in capsys.readouterr().err


def test_cli_cutout_reads_a_shared_scale_when_allowed(tmp_path: Path) -> None:
    vol, data = shared_dataset(tmp_path)
    out = tmp_path / "cut.npy"
    assert main(["cutout", str(vol), "0:16,0:16,0:16", "-q", "-o", str(out)]) == 1
    assert main(["cutout", "--allow-parent-keys", str(vol), "0:16,0:16,0:16", "-q",
                 "-o", str(out)]) == 0  # fmt: skip
    np.testing.assert_array_equal(np.load(out), data)


@pytest.mark.parametrize(
    ("folder", "keep", "left"),
    [
        ("1", [], {"0/a", "0/b", "x"}),  # the folder's keys go, nothing else
        ("", [], {"0/a", "0/b", "1/a", "1/b/c", "x"}),  # the root is never emptied
        ("../0", [], {"0/a", "0/b", "1/a", "1/b/c", "x"}),  # outside the root: nothing
        ("1/../..", [], {"0/a", "0/b", "1/a", "1/b/c", "x"}),
        ("1", ["1/b"], {"0/a", "0/b", "1/a", "1/b/c", "x"}),  # holds a kept folder
        ("1/b", ["1"], {"0/a", "0/b", "1/a", "1/b/c", "x"}),  # lies inside one
        ("1", [""], {"0/a", "0/b", "x"}),  # a kept root keeps only itself
    ],
)
def test_delete_folder_stays_inside_its_folder(
    folder: str, keep: list[str], left: set[str]
) -> None:
    from bigarrays.stores import MemoryStore, delete_folder

    store = MemoryStore()
    for key in ("0/a", "0/b", "1/a", "1/b/c", "x"):
        store.put(key, b"v")
    delete_folder(store, folder, keep=keep)
    assert set(store.list("")) == left


def test_the_viewer_serves_a_scale_beside_the_dataset_under_an_alias(tmp_path: Path) -> None:
    from viewer_helpers import fetch

    vol, _ = shared_dataset(tmp_path)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    viewer = ba.view(ba.open(vol, allow_parent_keys=True))
    try:
        base = viewer.data_url()
        status, headers, body = fetch(base + "info")
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        # The browser would resolve "../shared" against the data URL itself.
        assert [s["key"] for s in json.loads(body)["scales"]] == [".../shared"]
        chunk = ".../shared/0-8_0-8_0-8"
        status, _, body = fetch(base + chunk)
        assert status == 200
        assert body == (tmp_path / "shared" / "0-8_0-8_0-8").read_bytes()
        status, headers, part = fetch(base + chunk, {"Range": "bytes=0-9"})
        assert (status, part) == (206, body[:10])
        # Only the scales the info names are aliased.
        assert fetch(base + ".../secret.txt")[0] == 404
    finally:
        viewer.close()
