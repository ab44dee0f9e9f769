#!/usr/bin/env python3
"""Regenerate engine/tests/data/quant/: quantized blocks and their reference dequantization.

Nothing here is our code's output. Blocks come from llama.cpp's own quantizer
(`ggml_quantize_chunk` in the libggml-base shipped inside the llama_cpp package) or are
hand-made adversarial bytes; the reference f32 values come from gguf-py
(`gguf.quants.dequantize`). gguf-py has no Q8_K, so Q8_K blocks come from ggml's
`quantize_row_q8_K_ref` and its reference values from ggml's `dequantize_row_q8_K`.

As a second opinion, every gguf-py result is also compared with ggml's own `to_float`
(`ggml_get_type_traits(type)->to_float`); the agreement is recorded in the manifest.

Usage (from the repository root, in a venv with tools/quant_ref/requirements.txt):
    python tools/quant_ref/gen.py [--out engine/tests/data/quant]
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import importlib.metadata as md
import json
import os
import sys

import numpy as np
import gguf
from gguf.constants import GGMLQuantizationType as QT, GGML_QUANT_SIZES

SEED = 20251205
N_PER_ROW = 512  # two K-quant super-blocks, sixteen 32-blocks per row

# Types whose blocks llama.cpp quantizes for us (ggml type ids, ggml/include/ggml.h).
QUANTIZED = [QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0,
             QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K]
FLOATS = [QT.F32, QT.F16, QT.BF16]

# Byte offsets of the f16 fields of each block (ggml-common.h layouts), so hand-made blocks
# can be given chosen scales. Q8_K's scale is an f32 at offset 0.
F16_FIELDS = {
    QT.Q4_0: {"d": 0}, QT.Q4_1: {"d": 0, "m": 2}, QT.Q5_0: {"d": 0}, QT.Q5_1: {"d": 0, "m": 2},
    QT.Q8_0: {"d": 0}, QT.Q2_K: {"d": 80, "dmin": 82}, QT.Q3_K: {"d": 108},
    QT.Q4_K: {"d": 0, "dmin": 2}, QT.Q5_K: {"d": 0, "dmin": 2}, QT.Q6_K: {"d": 208},
}


class TypeTraits(ctypes.Structure):
    # struct ggml_type_traits, ggml/include/ggml.h
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def load_ggml() -> tuple[ctypes.CDLL, str]:
    import llama_cpp
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    cands = sorted(glob.glob(os.path.join(libdir, "libggml-base.so*")))
    if not cands:
        sys.exit(f"no libggml-base.so under {libdir}")
    lib = ctypes.CDLL(cands[0])
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_void_p]
    lib.ggml_quantize_init.argtypes = [ctypes.c_int]
    lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
    lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
    lib.quantize_row_q8_K_ref.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.dequantize_row_q8_K.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    return lib, os.path.basename(cands[0])


def rows(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """16 rows of N_PER_ROW f32 values from several distributions, and what each row is."""
    n = N_PER_ROW
    out: list[tuple[str, np.ndarray]] = []
    for i in range(2):
        out.append((f"normal(0,1) #{i}", rng.standard_normal(n)))
    for i in range(2):
        out.append((f"uniform(-1,1) #{i}", rng.uniform(-1, 1, n)))
    out.append(("uniform(0,5) (all positive)", rng.uniform(0, 5, n)))
    for i in range(2):
        x = rng.standard_normal(n)
        idx = rng.choice(n, 6, replace=False)
        x[idx] *= 100.0
        out.append((f"normal with 6 outliers x100 #{i}", x))
    # Tiny magnitudes: the f16 block scales fall below 2^-14 and become subnormal.
    out.append(("normal(0,1e-4) (subnormal f16 scales)", rng.standard_normal(n) * 1e-4))
    out.append(("normal(0,3e-6) (subnormal f16 scales)", rng.standard_normal(n) * 3e-6))
    # Large but finite: the largest block scales stay below f16 max (65504) for every type.
    out.append(("uniform(-4e5,4e5) (large f16 scales)", rng.uniform(-4e5, 4e5, n)))
    out.append(("all equal 0.7", np.full(n, 0.7)))
    out.append(("all equal -3.25", np.full(n, -3.25)))
    out.append(("zeros", np.zeros(n)))
    x = rng.standard_normal(n)
    x[rng.random(n) < 0.9] = 0.0
    out.append(("sparse normal (90% zeros)", x))
    out.append(("ramp linspace(-1,1)", np.linspace(-1, 1, n)))
    out.append(("small integers in -8..7", rng.integers(-8, 8, n).astype(np.float64)))
    data = np.stack([x for _, x in out]).astype(np.float32)
    return np.ascontiguousarray(data), [name for name, _ in out]


def ggml_quantize(lib: ctypes.CDLL, qt: QT, x: np.ndarray) -> np.ndarray:
    n_rows, n_per_row = x.shape
    bs, ts = GGML_QUANT_SIZES[qt]
    dst = np.zeros(n_rows * (n_per_row // bs) * ts, dtype=np.uint8)
    lib.ggml_quantize_init(int(qt))
    got = lib.ggml_quantize_chunk(int(qt), x.ctypes.data, dst.ctypes.data, 0, n_rows, n_per_row,
                                  None)
    assert got == dst.size, (qt.name, got, dst.size)
    return dst


def ggml_to_float(lib: ctypes.CDLL, qt: QT, blocks: np.ndarray) -> np.ndarray:
    bs, ts = GGML_QUANT_SIZES[qt]
    n = blocks.size // ts * bs
    y = np.zeros(n, dtype=np.float32)
    tr = lib.ggml_get_type_traits(int(qt)).contents
    assert tr.to_float, qt.name
    TO_FLOAT(tr.to_float)(blocks.ctypes.data, y.ctypes.data, n)
    return y


def oracle(qt: QT, blocks: np.ndarray) -> np.ndarray:
    """gguf-py's dequantization: the reference we must match bit for bit."""
    return np.asarray(gguf.quants.dequantize(blocks, qt), dtype=np.float32).reshape(-1)


def scale_stats(qt: QT, blocks: np.ndarray) -> dict:
    """How many blocks have a zero, subnormal or negative f16 scale `d` (coverage record)."""
    if qt not in F16_FIELDS:
        return {}
    _, ts = GGML_QUANT_SIZES[qt]
    off = F16_FIELDS[qt]["d"]
    d = blocks.reshape(-1, ts)[:, off:off + 2].copy().view(np.uint16).reshape(-1)
    mag = d & 0x7FFF
    return {"blocks_with_d": {"total": int(d.size), "zero": int(np.sum(mag == 0)),
                              "subnormal": int(np.sum((mag > 0) & (mag < 0x0400))),
                              "negative": int(np.sum((d & 0x8000) != 0) - np.sum(d == 0x8000))}}


def finite_f16(h: np.ndarray) -> np.ndarray:
    """Makes random f16 bit patterns finite: an all-ones exponent loses its top bit."""
    h = h.astype(np.uint16)
    bad = (h & 0x7C00) == 0x7C00
    h[bad] &= np.uint16(0xBFFF)
    return h


def adversarial(qt: QT, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Hand-made blocks: extreme and subnormal scales, negative scales, all-max quants,
    and random bytes with finite scales. One block per case, several random ones."""
    _, ts = GGML_QUANT_SIZES[qt]
    fields = F16_FIELDS[qt]
    cases: list[tuple[str, bytes, dict[str, int]]] = []
    f16 = {"one": 0x3C00, "neg_one": 0xBC00, "max": 0x7BFF, "neg_max": 0xFBFF,
           "min_sub": 0x0001, "max_sub": 0x03FF, "neg_sub": 0x8201, "min_normal": 0x0400,
           "zero": 0x0000, "neg_zero": 0x8000, "third": 0x3555}
    ff = b"\xff" * ts
    alt = bytes([0xA5, 0x5A] * ts)[:ts]
    for label, body in [("all-max quants", ff), ("0xA5/0x5A quants", alt)]:
        for a, b in [("one", "one"), ("max", "max"), ("max", "neg_max"), ("min_sub", "min_sub"),
                     ("max_sub", "neg_sub"), ("neg_one", "third"), ("neg_max", "min_normal"),
                     ("neg_zero", "max"), ("zero", "neg_one")]:
            vals = {}
            for k, name in zip(fields, [a, b]):
                vals[k] = f16[name]
            cases.append((f"{label}, " + ", ".join(f"{k}={vals[k]:#06x}" for k in vals), body, vals))
    blocks = []
    names = []
    for name, body, vals in cases:
        blk = bytearray(body)
        for k, off in fields.items():
            blk[off:off + 2] = int(vals[k]).to_bytes(2, "little")
        blocks.append(bytes(blk))
        names.append(name)
    n_random = 16
    for i in range(n_random):
        blk = bytearray(rng.integers(0, 256, ts, dtype=np.uint8).tobytes())
        for off in fields.values():
            h = finite_f16(np.frombuffer(bytes(blk[off:off + 2]), dtype=np.uint16).copy())
            blk[off:off + 2] = h.tobytes()
        blocks.append(bytes(blk))
        names.append(f"random bytes, finite f16 scales #{i}")
    return np.frombuffer(b"".join(blocks), dtype=np.uint8).copy(), names


def adversarial_q8_k(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Q8_K blocks (f32 d, i8 qs[256], i16 bsums[16]) with hand-picked and random d."""
    ds = [("d=1", 1.0), ("d=-1", -1.0), ("d=1e30", 1e30), ("d=-3e35", -3e35),
          ("d=min subnormal f32", np.float32(np.frombuffer(b"\x01\0\0\0", np.float32)[0])),
          ("d=1e-40 (subnormal f32)", 1e-40), ("d=-0", -0.0)]
    blocks, names = [], []
    for label, d in ds:
        qs = np.full(256, 127, dtype=np.int8)
        qs[1::2] = -128
        blocks.append(np.float32(d).tobytes() + qs.tobytes() + np.zeros(16, np.int16).tobytes())
        names.append(f"{label}, qs alternating 127/-128")
    for i in range(8):
        d = np.float32(rng.standard_normal() * 10.0 ** rng.integers(-30, 30))
        qs = rng.integers(-128, 128, 256).astype(np.int8)
        bs = qs.astype(np.int16).reshape(16, 16).sum(axis=1).astype(np.int16)
        blocks.append(d.tobytes() + qs.tobytes() + bs.tobytes())
        names.append(f"random qs, d={float(d):.3g} #{i}")
    return np.frombuffer(b"".join(blocks), dtype=np.uint8).copy(), names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="engine/tests/data/quant")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    lib, libname = load_ggml()
    rng = np.random.default_rng(SEED)
    x, row_names = rows(rng)
    n_rows = x.shape[0]

    versions = {p: md.version(p) for p in ("gguf", "numpy", "llama_cpp_python")}
    versions["ggml_library"] = libname
    entries = []

    def emit(name: str, qt: QT, blocks: np.ndarray, ref: np.ndarray, extra: dict) -> None:
        blocks.tofile(os.path.join(args.out, f"{name}.bin"))
        ref.astype("<f4").tofile(os.path.join(args.out, f"{name}.f32"))
        agree = None
        if qt in QUANTIZED:
            other = ggml_to_float(lib, qt, blocks)
            agree = int(np.sum(other.view(np.uint32) == ref.view(np.uint32)))
        entries.append({"type": qt.name, "file": f"{name}.bin", "reference": f"{name}.f32",
                        "n_values": int(ref.size), **extra, **scale_stats(qt, blocks),
                        "ggml_to_float_bitwise_agreement": None if agree is None
                        else f"{agree}/{ref.size}"})
        print(f"{name:12s} {qt.name:5s} {blocks.size:7d} bytes {ref.size:6d} values"
              + ("" if agree is None else f"  ggml to_float agrees on {agree}/{ref.size}"))

    common = {"seed": SEED, "n_rows": n_rows, "n_per_row": N_PER_ROW, "rows": row_names}

    for qt in QUANTIZED:
        blocks = ggml_quantize(lib, qt, x)
        emit(qt.name.lower(), qt, blocks, oracle(qt, blocks),
             {**common, "blocks_by": "llama.cpp ggml_quantize_chunk (imatrix NULL)",
              "reference_by": "gguf-py gguf.quants.dequantize"})
        adv, names = adversarial(qt, rng)
        emit(qt.name.lower() + ".adv", qt, adv, oracle(qt, adv),
             {"seed": SEED, "blocks": names, "blocks_by": "hand-made (gen.py adversarial)",
              "reference_by": "gguf-py gguf.quants.dequantize"})

    # Q8_K: ggml_quantize_chunk does not accept it and gguf-py cannot dequantize it.
    q8k = np.zeros(n_rows * N_PER_ROW // 256 * 292, dtype=np.uint8)
    lib.quantize_row_q8_K_ref(x.ctypes.data, q8k.ctypes.data, x.size)
    ref = np.zeros(x.size, dtype=np.float32)
    lib.dequantize_row_q8_K(q8k.ctypes.data, ref.ctypes.data, x.size)
    emit("q8_k", QT.Q8_K, q8k, ref,
         {**common, "blocks_by": "llama.cpp quantize_row_q8_K_ref",
          "reference_by": "llama.cpp dequantize_row_q8_K (gguf-py has no Q8_K)"})
    adv, names = adversarial_q8_k(rng)
    ref = np.zeros(adv.size // 292 * 256, dtype=np.float32)
    lib.dequantize_row_q8_K(adv.ctypes.data, ref.ctypes.data, ref.size)
    emit("q8_k.adv", QT.Q8_K, adv, ref,
         {"seed": SEED, "blocks": names, "blocks_by": "hand-made (gen.py adversarial)",
          "reference_by": "llama.cpp dequantize_row_q8_K (gguf-py has no Q8_K)"})

    # Float types: converted by gguf-py / numpy, widened back by gguf-py.
    f32 = x.reshape(-1).view(np.uint8).copy()
    emit("f32", QT.F32, f32, oracle(QT.F32, f32),
         {**common, "blocks_by": "the f32 source values", "reference_by": "gguf-py gguf.quants.dequantize"})
    with np.errstate(over="ignore"):  # the ±4e5 row is meant to overflow to ±inf in F16
        f16 = np.asarray(gguf.quants.quantize(x, QT.F16)).reshape(-1).view(np.uint8).copy()
    emit("f16", QT.F16, f16, oracle(QT.F16, f16),
         {**common, "blocks_by": "gguf-py gguf.quants.quantize (numpy astype float16)",
          "reference_by": "gguf-py gguf.quants.dequantize"})
    bf16 = np.asarray(gguf.quants.quantize(x, QT.BF16)).reshape(-1).view(np.uint8).copy()
    emit("bf16", QT.BF16, bf16, oracle(QT.BF16, bf16),
         {**common, "blocks_by": "gguf-py gguf.quants.quantize", "reference_by": "gguf-py gguf.quants.dequantize"})
    # Every non-NaN f16 bit pattern (NaN payloads are not part of the contract).
    pats = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    pats = pats[((pats & 0x7C00) != 0x7C00) | ((pats & 0x03FF) == 0)]
    f16a = pats.view(np.uint8).copy()
    emit("f16.adv", QT.F16, f16a, oracle(QT.F16, f16a),
         {"blocks": ["every f16 bit pattern except NaNs, ascending"], "blocks_by": "hand-made",
          "reference_by": "gguf-py gguf.quants.dequantize"})
    # bf16: specials, subnormals, extremes, and random patterns (NaN-free).
    sp = [0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80,
          0x3F80, 0xBF80, 0x4049, 0x3EAB]
    rnd = rng.integers(0, 1 << 16, 2034).astype(np.uint16)
    rnd = rnd[((rnd & 0x7F80) != 0x7F80)]
    bf16a = np.concatenate([np.array(sp, dtype=np.uint16), rnd]).view(np.uint8).copy()
    emit("bf16.adv", QT.BF16, bf16a, oracle(QT.BF16, bf16a),
         {"blocks": ["bf16 specials, then random NaN-free bit patterns"], "blocks_by": "hand-made",
          "reference_by": "gguf-py gguf.quants.dequantize"})

    manifest = {"generator": "tools/quant_ref/gen.py", "versions": versions, "entries": entries}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
