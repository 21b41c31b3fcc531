"""Charts of the recorded benchmark figures, drawn from the tables of the documentation.

The tables in docs/ are the record (each says how it was measured); this script reads them and
draws SVG charts into docs/images/, so a chart always shows what its table says:

- ``peers.svg``: the latest comparison with TensorStore, CloudVolume and zarr-python
  (docs/performance.md, "Latest comparison"): local throughput, random cutouts and S3.
- ``codecs.svg``: compression ratio against decode and encode speed for every codec and level
  (docs/encodings.md).

Run ``python bench/charts.py`` after a table changes (matplotlib is needed); the output is
deterministic, and tests/test_docs_charts.py checks the committed charts against the tables.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PEERS = ["bigarrays", "TensorStore", "CloudVolume", "zarr-python"]
COLOURS = {"bigarrays": "#1a73e8", "TensorStore": "#e37400", "CloudVolume": "#188038",
           "zarr-python": "#8430ce"}  # fmt: skip


def table(markdown: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose first header cell is ``first_header``."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0] == first_header:
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(cells, _cells(row), strict=False)))
            return rows
    raise ValueError(f"no table whose first column is {first_header!r}")


def _cells(line: str) -> list[str]:
    line = line.strip()
    if not line.startswith("|"):
        return []
    return [c.strip() for c in line.strip("|").split("|")]


def number(cell: str) -> float | None:
    """``2,153`` -> 2153.0; ``n/a``, ``—``, ``(view)`` or an empty cell -> None."""
    m = re.fullmatch(r"\**([\d,]+(?:\.\d+)?)\**", cell.strip())
    return float(m.group(1).replace(",", "")) if m else None


def pair(cell: str) -> tuple[float | None, float | None]:
    """``91 / 121`` -> (91.0, 121.0)."""
    parts = cell.split("/")
    if len(parts) != 2:
        return (None, None)
    return (number(parts[0]), number(parts[1]))


def peer_figures() -> dict[str, Any]:
    rows = table((DOCS / "performance.md").read_text(), "case")
    local: dict[str, dict[str, float | None]] = {}
    s3: dict[str, dict[str, float | None]] = {}
    cutouts: dict[str, float | None] = {}
    for row in rows:
        case = row["case"]
        if case.startswith("S3"):
            kind = "gzip" if "gzip" in case else "raw"
            for peer in PEERS:
                write, read = pair(row.get(peer, ""))
                s3.setdefault(f"write, {kind}", {})[peer] = write
                s3.setdefault(f"read, {kind}", {})[peer] = read
        elif "cutouts/s" in case:
            cutouts = {peer: number(row.get(peer, "")) for peer in PEERS}
        elif "memory" not in case:
            label = re.sub(r" (at )?\(.*?\)", "", case)
            local[label] = {peer: number(row.get(peer, "")) for peer in PEERS}
    return {"local": local, "s3": s3, "cutouts": cutouts}


def codec_figures() -> list[dict[str, Any]]:
    rows = table((DOCS / "encodings.md").read_text(), "codec")
    out = []
    for row in rows:
        name = f"{row['codec']} {row['level']}".replace(" -", "")
        out.append({
            "name": name, "codec": row["codec"],
            "em": (number(row["EM dec"]), number(row["EM enc"]), number(row["EM ratio"])),
            "labels": (number(row["labels dec"]), number(row["labels enc"]),
                       number(row["labels ratio"])),
        })  # fmt: skip
    return out


def _grouped(ax: Any, groups: dict[str, dict[str, float | None]], ylabel: str) -> None:
    width = 0.8 / len(PEERS)
    for k, peer in enumerate(PEERS):
        xs, ys = [], []
        for i, values in enumerate(groups.values()):
            if values.get(peer) is not None:
                xs.append(i + (k - (len(PEERS) - 1) / 2) * width)
                ys.append(values[peer])
        ax.bar(xs, ys, width, label=peer, color=COLOURS[peer])
    ax.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def draw_peers(plt: Any, out: Path) -> Path:
    figures = peer_figures()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), width_ratios=[6, 1.4, 4])
    _grouped(axes[0], figures["local"], "MiB/s (uncompressed voxels)")
    axes[0].set_title("Local disk, 512³ uint8, 64³ chunks")
    _grouped(axes[1], {"32³ cutouts": figures["cutouts"]}, "cutouts per second")
    axes[1].set_title("1,000 random cutouts")
    _grouped(axes[2], figures["s3"], "MiB/s")
    axes[2].set_title("S3 (moto on loopback), 256³")
    axes[0].legend(loc="upper right", fontsize=9)
    fig.suptitle("bigarrays and its peers (higher is better; missing bars: the peer cannot)")
    fig.tight_layout()
    path = out / "peers.svg"
    _save(fig, path)
    plt.close(fig)
    return path


def draw_codecs(plt: Any, out: Path) -> Path:
    codecs = codec_figures()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=False)
    styles = {"raw": ("s", "#5f6368"), "gzip": ("o", "#1a73e8"), "zstd": ("D", "#e37400"),
              "br": ("^", "#188038"), "blosc": ("v", "#d93025"), "jpeg": ("P", "#8430ce"),
              "png": ("X", "#12859e")}  # fmt: skip
    for ax, which, title in ((axes[0], "em", "8-bit EM"), (axes[1], "labels", "uint64 labels")):
        for c in codecs:
            _decode, enc, ratio = c[which]
            if ratio is None or enc is None:
                continue
            family = "cseg" if c["codec"].startswith("cseg") else c["codec"]
            marker, colour = styles.get(family, ("*", "#b06000"))
            ax.scatter(enc, ratio, marker=marker, s=55, color=colour, alpha=0.85, label=family)
            level = c["name"].removeprefix(c["codec"]).strip()
            tag = c["codec"].removeprefix("cseg").lstrip("+") if family == "cseg" else level
            ax.annotate(tag or family, (enc, ratio), fontsize=7, xytext=(4, 3),
                        textcoords="offset points", color=colour)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("encode MiB/s, one thread (log)")
        ax.set_ylabel("compression ratio")
        if which == "labels":  # 1x to 200x: only a log scale shows them all
            ax.set_yscale("log")
            ax.set_ylabel("compression ratio (log)")
        ax.set_title(f"{title}, 64³ chunks")
        ax.grid(alpha=0.3, which="both")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=8, loc="best")
    fig.suptitle("Encodings and compressions: what each costs to write and saves in bytes")
    fig.tight_layout()
    path = out / "codecs.svg"
    _save(fig, path)
    plt.close(fig)
    return path


def _save(fig: Any, path: Path) -> None:
    # No date and a fixed id salt: the same table gives the same file, byte for byte.
    fig.savefig(path, format="svg", metadata={"Date": None, "Creator": None})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DOCS / "images",
                        help="folder for the SVG files (default docs/images)")  # fmt: skip
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.hashsalt": "bigarrays", "svg.fonttype": "none",
                                "font.size": 10})  # fmt: skip
    import matplotlib.pyplot as plt

    args.output.mkdir(parents=True, exist_ok=True)
    for path in (draw_peers(plt, args.output), draw_codecs(plt, args.output)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
