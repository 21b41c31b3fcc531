"""The committed pictures of the docs are what their scripts draw from the recorded figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_charts_show_the_tables(tmp_path: Path) -> None:
    _script("charts").main(["-o", str(tmp_path)])
    for name in ("peers.svg", "codecs.svg"):
        drawn = (tmp_path / name).read_text()
        assert drawn == (IMAGES / name).read_text(), (
            f"docs/images/{name} is not what the tables say: run python bench/charts.py"
        )


def test_the_tables_are_read_as_written() -> None:
    charts = _script("charts")
    text = (
        "Intro.\n\n| case | bigarrays | TensorStore |\n|---|---:|---:|\n"
        "| full read | 2,153 | n/a |\n| S3 write / read | 91 / 121 | — |\n\nAfter.\n| x |\n"
    )
    rows = charts.table(text, "case")
    assert [r["case"] for r in rows] == ["full read", "S3 write / read"]
    assert charts.number(rows[0]["bigarrays"]) == 2153
    assert charts.number(rows[0]["TensorStore"]) is None
    assert charts.pair(rows[1]["bigarrays"]) == (91, 121)
    assert charts.pair(rows[1]["TensorStore"]) == (None, None)
    assert charts.number("(view)") is None
    assert charts.number("**1.5**") == 1.5
    with pytest.raises(ValueError, match="no table"):
        charts.table(text, "codec")
    # Every case of the recorded comparison has a bigarrays figure.
    peers = charts.peer_figures()
    assert peers["local"]
    assert all(v["bigarrays"] for v in peers["local"].values())
    assert all(c["em"][2] or c["labels"][2] for c in charts.codec_figures())


def test_the_layers_diagram_is_current(tmp_path: Path) -> None:
    svg = _script("layers_diagram").svg()
    assert svg == (IMAGES / "layers.svg").read_text(), "run python bench/layers_diagram.py"
    for layer in ("API and CLI", "BigArray", "Formats", "Chunk engine", "Codecs", "Stores"):
        assert layer in svg
