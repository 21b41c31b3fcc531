"""Draw the layers of bigarrays as an SVG (docs/images/layers.svg).

Plain SVG text rather than a plotting library: the picture is boxes, arrows and words, and the
file stays small, diffable and sharp at any zoom. Run ``python bench/layers_diagram.py`` after the
layers change.
"""

from __future__ import annotations

import argparse
from html import escape
from pathlib import Path

#: (layer, where it lives, what it holds), top to bottom; an arrow points from a layer to the next.
LAYERS = [
    ("API and CLI", "api.py, cli.py, commands/",
     "open, create, stream, from_dask, store; the bigarrays command"),
    ("BigArray", "array.py, indexing.py, box.py",
     "absolute indices -> boxes; bounds, dims, levels (mips), views, resize"),
    ("Formats", "formats/precomputed, formats/zarr",
     "precomputed, Zarr v3 / v2, OME-Zarr; chunk grid, metadata, sharding"),
    ("Chunk engine", "pipeline.py, cache.py",
     "fetch -> decode -> paste; cut -> encode -> conditional put; thread pool"),
    ("Codecs", "codecs/",
     "raw, jpeg, png, compressed_segmentation | gzip, zstd, brotli, blosc, crc32c"),
    ("Stores", "stores/",
     "file, memory, S3, GCS, HTTP, zip, LMDB, fsspec, reference"),
]  # fmt: skip
FILLS = ["#e8f0fe", "#e6f4ea", "#fef7e0", "#fce8e6", "#f3e8fd", "#e4f7fb"]
STROKES = ["#1a73e8", "#188038", "#e37400", "#d93025", "#8430ce", "#12859e"]


def svg() -> str:
    width, box_h, gap, left, name_w = 860, 56, 22, 20, 250
    height = len(LAYERS) * (box_h + gap) - gap + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#5f6368"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for i, (name, where, holds) in enumerate(LAYERS):
        y = 20 + i * (box_h + gap)
        w = width - 2 * left
        out += [
            f'<rect x="{left}" y="{y}" width="{w}" height="{box_h}" rx="8" fill="{FILLS[i]}" '
            f'stroke="{STROKES[i]}" stroke-width="1.5"/>',
            f'<text x="{left + 14}" y="{y + 24}" font-size="17" font-weight="bold" '
            f'fill="{STROKES[i]}">{escape(name)}</text>',
            f'<text x="{left + 14}" y="{y + 44}" font-size="11.5" fill="#5f6368" '
            f'font-family="monospace">{escape(where)}</text>',
            f'<text x="{left + name_w + 40}" y="{y + 34}" font-size="13" '
            f'fill="#202124">{escape(holds)}</text>',
        ]
        if i + 1 < len(LAYERS):
            x = width // 2
            y0, y1 = y + box_h + 2, y + box_h + gap - 4
            out.append(f'<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" stroke="#5f6368" '
                       'stroke-width="1.5" marker-end="url(#arrow)"/>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "docs" / "images" / "layers.svg"
    parser.add_argument("-o", "--output", type=Path, default=default)
    args = parser.parse_args()
    args.output.write_text(svg())
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
