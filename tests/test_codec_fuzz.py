"""Fuzzing the decoders: whatever bytes a store hands back, a decoder returns an array of exactly
the chunk's shape or raises CorruptChunkError naming the key; never another exception, never a
crash of the interpreter (a crash would take the test worker down with it).

Two sources of bad bytes: hypothesis (arbitrary bytes, and real chunks edited at the positions
it picks), and seeded random mutation of real chunks, including the oracles' golden files.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.codecs import ChunkCodec, make_codec
from bigarrays.codecs.blosc import BloscCompressor
from bigarrays.errors import CorruptChunkError, ViewerCompatibilityWarning
from bigarrays.formats.precomputed.chunks import parse_chunk_name
from bigarrays.stores import content_encoding
from bigarrays.synthetic import synthetic_em

GOLDEN = Path(__file__).parent / "data" / "golden"
KEY = "scale/0-9_0-6_0-5"
SHAPE3 = (9, 6, 5)

CASES: dict[str, tuple[str, str, int, dict[str, Any]]] = {
    "raw-u16": ("raw", "uint16", 1, {}),
    "jpeg-1": ("jpeg", "uint8", 1, {}),
    "jpeg-3": ("jpeg", "uint8", 3, {}),
    "png-u8-1": ("png", "uint8", 1, {}),
    "png-u8-2": ("png", "uint8", 2, {}),
    "png-u16-1": ("png", "uint16", 1, {}),
    "png-u16-3": ("png", "uint16", 3, {}),
    "png-u16-4": ("png", "uint16", 4, {}),
    "cseg-u32": ("compressed_segmentation", "uint32", 1,
                 {"compressed_segmentation_block_size": (4, 4, 2)}),
    "cseg-u64": ("compressed_segmentation", "uint64", 1, {}),
    "cseg-u64-2ch": ("compressed_segmentation", "uint64", 2,
                     {"compressed_segmentation_block_size": (2, 3, 2)}),
}  # fmt: skip


def codec_for(case: str) -> tuple[ChunkCodec, tuple[int, int, int, int]]:
    encoding, dtype, nch, options = CASES[case]
    return make_codec(encoding, dtype, nch, **options), (*SHAPE3, nch)


def sample(case: str, seed: int = 0) -> np.ndarray:
    encoding, dtype, nch, _ = CASES[case]
    if encoding == "compressed_segmentation":
        rng = np.random.default_rng(seed)
        x, y, z = np.meshgrid(*(np.arange(s) for s in SHAPE3), indexing="ij")
        region = x // 2 + 3 * (y // 3) + 7 * (z // 2)
        ids = rng.integers(0, np.iinfo(dtype).max, size=region.max() + 1, dtype=dtype)
        ids[::3] = rng.integers(0, 5, size=ids[::3].size)
        return np.stack([np.roll(ids, c)[region] for c in range(nch)], axis=-1)
    em = np.stack([synthetic_em(Box((3 * c, 0, 0), (3 * c + 9, 6, 5)), seed=seed)
                   for c in range(nch)], axis=-1)  # fmt: skip
    return em.astype(dtype) * (257 if dtype == "uint16" else 1)


def assert_safe(decode: Callable[[], Any], check: Callable[[Any], None], key: str = KEY) -> None:
    """``decode()`` either raises CorruptChunkError naming ``key`` or returns a checked value."""
    try:
        out = decode()
    except CorruptChunkError as exc:
        error = exc
    else:
        check(out)
        return
    assert error.key == key
    assert key in str(error)


def decode_safely(codec: ChunkCodec, data: bytes, shape: tuple[int, ...]) -> None:
    def check(out: np.ndarray) -> None:
        assert out.shape == shape
        assert out.dtype == codec.dtype

    assert_safe(lambda: codec.decode(data, shape, KEY), check)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Flip, overwrite, cut, splice or repeat bytes: the damage storage and transfers do."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if not out:
            out = bytearray(rng.randbytes(rng.randint(1, 16)))
        elif op < 0.3:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif op < 0.5:
            # Headers hold the sizes and offsets: hit the first bytes more often.
            out[rng.randrange(min(len(out), 64))] = rng.randrange(256)
        elif op < 0.6:
            pos = rng.randrange(min(len(out), 64) // 4 + 1) * 4
            out[pos : pos + 4] = rng.choice(
                [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f",
                 rng.randbytes(4), (len(out) // 4).to_bytes(4, "little")]
            )  # fmt: skip
        elif op < 0.75:
            del out[rng.randrange(len(out)) :]
        elif op < 0.85:
            start = rng.randrange(len(out))
            del out[start : start + rng.randint(1, 32)]
        elif op < 0.95:
            pos = rng.randrange(len(out) + 1)
            out[pos:pos] = rng.randbytes(rng.randint(1, 32))
        else:
            out += out[: rng.randint(1, len(out))]
    return bytes(out)


# -- hypothesis ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes(case: str, data: bytes) -> None:
    codec, shape = codec_for(case)
    decode_safely(codec, data, shape)


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), max_size=6),
       cut=st.integers(0, 2**16), shape_delta=st.sampled_from([0, 0, 0, 1, -1]))  # fmt: skip
def test_real_chunks_edited_where_hypothesis_says(
    case: str, edits: list[tuple[int, int]], cut: int, shape_delta: int
) -> None:
    codec, shape = codec_for(case)
    good = bytearray(codec.encode(np.asfortranarray(sample(case))))
    for pos, value in edits:
        good[pos % len(good)] = value
    data = bytes(good[: max(1, len(good) - cut % 8)] if cut % 3 == 0 else good)
    # The same bytes read as a chunk of another shape (an edge chunk, a wrong key).
    asked = (shape[0] + shape_delta, *shape[1:])
    decode_safely(codec, data, asked)


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "br"])
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=400), cut=st.integers(0, 40), flip=st.integers(0, 2**16))
def test_transfer_decoders(encoding: str, data: bytes, cut: int, flip: int) -> None:
    assert_safe(lambda: content_encoding.decode(data, encoding, KEY), lambda out: None)
    good = bytearray(content_encoding.encode(bytes(range(200)) * 3, encoding))
    good[flip % len(good)] ^= 1 + flip % 255
    damaged = bytes(good[: len(good) - cut % len(good)])
    assert_safe(lambda: content_encoding.decode(damaged, encoding, KEY), lambda out: None)


@settings(max_examples=200, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 40),
    size_delta=st.sampled_from([0, 0, 0, -1, 1]),
)
def test_gunzip_into_fills_right_or_declines(
    edits: list[tuple[int, int]], cut: int, size_delta: int
) -> None:
    """The zero-copy gzip path never hands back bytes that the member does not hold."""
    plain = np.asfortranarray(synthetic_em(Box((0, 0, 0), (32, 32, 4)))).tobytes(order="F")
    member = bytearray(content_encoding.encode(plain, "gzip", 6))
    for pos, value in edits:
        member[pos % len(member)] = value
    stored = bytes(member[: len(member) - cut % 3 * cut])
    out = bytearray(len(plain) + 8)
    view = memoryview(out)[: len(plain) + size_delta]
    n = content_encoding.gunzip_into(stored, view)
    if n is not None:
        assert n == len(view)
        assert bytes(view) == content_encoding.decode(stored, "gzip", KEY) == plain


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300), header=st.binary(min_size=16, max_size=16))
def test_blosc_decoder(data: bytes, header: bytes) -> None:
    comp = BloscCompressor(typesize=2)

    def check(out: bytes) -> None:
        assert len(out) == 540

    assert_safe(lambda: comp.decode(data, KEY, 540), check)
    good = comp.encode(np.arange(270, dtype=np.uint16).tobytes())
    assert_safe(lambda: comp.decode(header + good[16:], KEY, 540), check)


# -- seeded mutation of real chunks --------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_mutated_real_chunks(case: str) -> None:
    codec, shape = codec_for(case)
    rng = random.Random(f"mutate-{case}")
    originals = [codec.encode(np.asfortranarray(sample(case, seed))) for seed in range(3)]
    for _ in range(400):
        decode_safely(codec, mutate(rng.choice(originals), rng), shape)


def test_compressed_segmentation_headers_pointing_anywhere() -> None:
    """Block headers are the decoder's pointers: aim them at every edge of the buffer."""
    codec, shape = codec_for("cseg-u64")
    good = np.frombuffer(codec.encode(np.asfortranarray(sample("cseg-u64"))), "<u4").copy()
    rng = random.Random(7)
    n = good.size
    nblocks = 2 * 1 * 1  # 9x6x5 in 8x8x8 blocks
    for _ in range(1500):
        words = good.copy()
        word = 1 + rng.randrange(2 * nblocks)
        table = rng.choice([0, 1, n - 2, n - 1, n, n + 1, 2**24 - 1, rng.randrange(n)])
        bits = rng.choice([0, 1, 2, 4, 8, 16, 32, 3, 255])
        values = rng.choice([0, n - 1, n, 2**32 - 1, rng.randrange(n)])
        words[word] = (table & 0xFFFFFF) | (bits << 24) if word % 2 else values
        if rng.random() < 0.2:
            words[0] = rng.choice([0, 1, 2, n, 2**32 - 1])
        decode_safely(codec, words.tobytes(), shape)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "br", "blosc"])
def test_mutated_compressed_chunks_through_a_dataset(compression: str) -> None:
    """Damage below the codec (the compression of a stored chunk) through BigArray reads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ViewerCompatibilityWarning)
        vol = ba.create(f"memory://fuzz-{compression}", shape=(20, 12, 6), dtype="uint16",
                        chunks=(16, 8, 4), compression=compression, overwrite=True)  # fmt: skip
    key = vol.chunk_key((0, 0, 0))
    layout = vol.level.source
    chunk = np.asfortranarray(sample("png-u16-1")).repeat(2, axis=0)[:16, :, :4].repeat(2, axis=1)
    stored = layout.encode(chunk[:, :8])
    stored = bytes(content_encoding.encode(stored, layout.transfer_encoding))
    rng = random.Random(compression)
    keys: set[str] = set()
    for _ in range(300):
        damaged = mutate(stored, rng)
        try:
            plain = content_encoding.decode(damaged, layout.transfer_encoding, key)
        except CorruptChunkError as exc:
            keys.add(exc.key)
            continue

        def check(out: np.ndarray) -> None:
            assert out.shape == (16, 8, 4, 1)

        assert_safe(lambda p=plain: layout.decode(p, (16, 8, 4, 1), key), check, key)  # type: ignore[misc]
    assert keys <= {key}


GOLDEN_FILES = sorted(p for p in GOLDEN.glob("*/*/*") if p.is_file())


@pytest.mark.parametrize("case_dir", sorted({p.parent.parent.name for p in GOLDEN_FILES}))
def test_mutated_golden_chunks(case_dir: str) -> None:
    """The oracles' own chunks, damaged: the same promise for bytes bigarrays did not write."""
    vol = ba.open(GOLDEN / case_dir)
    layout = vol.level.source
    rng = random.Random(case_dir)
    for path in sorted((GOLDEN / case_dir / vol.scale.key).iterdir()):
        name, _, suffix = path.name.partition(".")
        encoding = {"gz": "gzip", "br": "br", "zstd": "zstd"}.get(suffix)
        shape = (*parse_chunk_name(name).shape, vol.num_channels)
        raw = path.read_bytes()
        for _ in range(40):
            damaged = mutate(raw, rng)

            def check(out: np.ndarray, shape: tuple[int, ...] = shape) -> None:
                assert out.shape == shape

            assert_safe(
                lambda d=damaged, e=encoding, s=shape, n=name: layout.decode(  # type: ignore[misc]
                    content_encoding.decode(d, e, n), s, n
                ),
                check,
                name,
            )


_MANY_CORRUPT_PNGS = """
import numpy as np
from bigarrays.codecs import make_codec
from bigarrays.errors import CorruptChunkError
codec = make_codec("png", np.dtype("{dtype}"), {channels})
chunk = np.arange(8 * 8 * 4 * {channels}, dtype="{dtype}").reshape((8, 8, 4, {channels}), order="F")
good = bytearray(codec.encode(chunk))
good[-20] ^= 0xFF  # inside the IDAT chunk: its CRC no longer matches
for _ in range(30_000):
    try:
        codec.decode(bytes(good), chunk.shape, "k")
    except CorruptChunkError:
        pass
    else:
        raise SystemExit("a corrupt png decoded")
print("ok")
"""


@pytest.mark.parametrize(("dtype", "channels"), [("uint8", 1), ("uint16", 1)])
def test_many_corrupt_png_chunks_leave_the_interpreter_alive(dtype: str, channels: int) -> None:
    """Each png decoder's error path is safe to take again and again.

    imagecodecs' libpng decoder drops a reference to None per failed decode, which aborts
    Python 3.11 after ~10,000 failures: neither decoder used here may do that.
    """
    import subprocess
    import sys

    script = _MANY_CORRUPT_PNGS.format(dtype=dtype, channels=channels)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
