#!/usr/bin/env python3
"""GGUF fixtures and reference dumps, made with gguf-py (llama.cpp's own `gguf` package).

    python tools/gguf_ref/make_fixtures.py reference   # gguf-py writes files, dumps what it reads
    python tools/gguf_ref/make_fixtures.py malformed   # mutates a gguf-py file into the corpus
    python tools/gguf_ref/make_fixtures.py dump FILE   # gguf-py's reading of FILE, as JSON on stdout
    python tools/gguf_ref/make_fixtures.py ours        # dumps the file our writer made (see below)

Everything lands in engine/tests/data/gguf/ and is committed, so tests need neither Python nor
gguf-py. `ours` reads engine/tests/data/gguf/writer/*.gguf, which the Rust test
`gguf_reference` writes when run with APR_REGEN_FIXTURES=1.

JSON value encoding (the Rust tests decode the same): every metadata entry is
{"key", "type", "value"}; integers and bools are JSON values, strings are strings, floats are their
IEEE bit patterns as integers (exact, no decimal round trip), arrays are
{"element_type", "items"} with items encoded the same way (nested arrays nest).
Requirements (pinned): requirements.txt; a venv with them: /work/ref/venv.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType, GGUFWriter, GGMLQuantizationType as Q

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "engine" / "tests" / "data" / "gguf"


# ---------------------------------------------------------------------------------------------
# Dump: what gguf-py reads, as JSON.

def _walk(parts, i: int, vtype: GGUFValueType):
    """Decodes one value from gguf-py's parsed `parts`, starting at parts[i]."""
    if vtype == GGUFValueType.STRING:
        return bytes(parts[i + 1]).decode("utf-8"), i + 2
    if vtype == GGUFValueType.ARRAY:
        etype = GGUFValueType(int(parts[i][0]))
        n = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            v, i = _walk(parts, i, etype)
            items.append(v)
        return {"element_type": etype.name, "items": items}, i
    arr = parts[i]
    if vtype == GGUFValueType.FLOAT32:
        return int(arr.view(np.uint32)[0]), i + 1
    if vtype == GGUFValueType.FLOAT64:
        return int(arr.view(np.uint64)[0]), i + 1
    if vtype == GGUFValueType.BOOL:
        return bool(arr[0]), i + 1
    return int(arr[0]), i + 1


def dump(path: Path) -> dict:
    r = GGUFReader(path)
    meta = []
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue  # header pseudo-fields
        vtype = GGUFValueType(int(f.parts[2][0]))
        value, end = _walk(f.parts, 3, vtype)
        assert end == len(f.parts), name
        meta.append({"key": name, "type": vtype.name, "value": value})
    tensors = []
    for t in r.tensors:
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "ne": [int(d) for d in t.shape],
            "n_elements": int(t.n_elements),
            "n_bytes": int(t.n_bytes),
            "offset": int(t.field.parts[5][0]),
            "file_offset": int(t.data_offset),
            "data_hex": t.data.tobytes().hex(),
        })
    version = int(r.fields["GGUF.version"].parts[0][0])
    return {
        "producer": f"gguf-py {gguf.__name__} GGUFReader (package version pinned in requirements.txt)",
        "version": version,
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": meta,
        "tensors": tensors,
    }


def write_dump(gguf_path: Path, json_path: Path) -> None:
    json_path.write_text(json.dumps(dump(gguf_path), indent=1) + "\n")
    print(f"wrote {json_path.relative_to(ROOT)}")


# ---------------------------------------------------------------------------------------------
# Reference files written by gguf-py.

def _raw(rng, qtype: Q, rows: int, cols: int) -> np.ndarray:
    """Random bytes shaped as gguf-py wants quantized data: (rows, bytes per row)."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    assert cols % block == 0
    return rng.integers(0, 256, size=(rows, cols // block * size), dtype=np.uint8)


def _finish(w: GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_all_types(path: Path) -> None:
    rng = np.random.default_rng(20261205)
    w = GGUFWriter(path, "llama")  # adds general.architecture = "llama"
    T = GGUFValueType
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 0.1)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "héllo, wörld ✓ \u0000 nul inside")
    w.add_uint64("test.u64", 18_000_000_000_000_000_000)
    w.add_int64("test.i64", -9_000_000_000_000_000_000)
    w.add_float64("test.f64", -1.0e300)
    w.add_float32("test.f32_negzero", -0.0)
    w.add_float32("test.f32_inf", float("inf"))
    w.add_string("test.empty_key_value", " ")
    w.add_key_value("test.arr_u8", [0, 1, 255], T.ARRAY, sub_type=T.UINT8)
    w.add_key_value("test.arr_i8", [-128, 0, 127], T.ARRAY, sub_type=T.INT8)
    w.add_key_value("test.arr_u16", [0, 65535], T.ARRAY, sub_type=T.UINT16)
    w.add_key_value("test.arr_i16", [-32768, 32767], T.ARRAY, sub_type=T.INT16)
    w.add_key_value("test.arr_u32", [1, 2, 4294967295], T.ARRAY, sub_type=T.UINT32)
    w.add_array("test.arr_i32", [-1, 0, 1, 2147483647])
    w.add_array("test.arr_f32", [0.5, -2.25, 1e-38, 3.4e38])
    w.add_array("test.arr_bool", [True, False, True])
    w.add_array("test.arr_str", ["a", "", "ü", "tokens are strings"])
    w.add_key_value("test.arr_u64", [0, 2**64 - 1], T.ARRAY, sub_type=T.UINT64)
    w.add_key_value("test.arr_i64", [-(2**63), 2**63 - 1], T.ARRAY, sub_type=T.INT64)
    w.add_key_value("test.arr_f64", [1.0 / 3.0, -0.0, 5e-324], T.ARRAY, sub_type=T.FLOAT64)
    w.add_array("test.nested_i32", [[1, 2], [3], [4, 5, 6]])
    w.add_array("test.nested_str", [["a"], ["b", "c"]])
    w.add_array("test.nested3_bool", [[[True], [False, True]], [[False]]])
    w.add_array("test.nested_f32", [[1.5], [2.5, -0.0]])
    # A longer array, as tokenizers have (for `apr inspect`'s summaries).
    w.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(40)])

    w.add_tensor("f32.matrix", rng.standard_normal((2, 3)).astype(np.float32))
    w.add_tensor("f16.vector", rng.standard_normal(5).astype(np.float16))
    w.add_tensor("bf16.matrix", _raw(rng, Q.BF16, 2, 8), raw_dtype=Q.BF16)
    w.add_tensor("q8_0.matrix", _raw(rng, Q.Q8_0, 3, 64), raw_dtype=Q.Q8_0)
    w.add_tensor("q4_k.matrix", _raw(rng, Q.Q4_K, 2, 256), raw_dtype=Q.Q4_K)
    w.add_tensor("q6_k.vector", _raw(rng, Q.Q6_K, 1, 256), raw_dtype=Q.Q6_K)
    w.add_tensor("f32.3d", rng.standard_normal((2, 3, 4)).astype(np.float32))
    w.add_tensor("f32.4d", rng.standard_normal((1, 2, 1, 3)).astype(np.float32))
    _finish(w)


def write_align64(path: Path) -> None:
    rng = np.random.default_rng(64)
    w = GGUFWriter(path, "qwen2")
    w.add_custom_alignment(64)
    w.add_uint32("qwen2.block_count", 2)
    w.add_float32("qwen2.rope.freq_base", 1000000.0)
    # Not Q8_1: gguf-py 0.19.0 sizes it 40 bytes per block (f32 d and s), ggml's block_q8_1 is
    # 36 (two f16). It is an activation type that model files do not store.
    for qt in (Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q5_K):
        cols = gguf.GGML_QUANT_SIZES[qt][0] * 2
        w.add_tensor(f"{qt.name.lower()}.w", _raw(rng, qt, 2, cols), raw_dtype=qt)
    w.add_tensor("f32.odd", rng.standard_normal(7).astype(np.float32))
    _finish(w)


def reference() -> None:
    out = DATA / "reference"
    out.mkdir(parents=True, exist_ok=True)
    for name, fn in (("gguf_py_all_types", write_all_types), ("gguf_py_align64", write_align64)):
        fn(out / f"{name}.gguf")
        print(f"wrote {(out / f'{name}.gguf').relative_to(ROOT)}")
        write_dump(out / f"{name}.gguf", out / f"{name}.json")


# ---------------------------------------------------------------------------------------------
# Malformed corpus: a small valid gguf-py file, then byte mutations.

def write_base(path: Path, *, extra=None) -> None:
    rng = np.random.default_rng(7)
    w = GGUFWriter(path, "llama")
    w.add_string("general.name", "tiny")
    w.add_uint32("test.key_a", 1)
    w.add_uint32("test.key_b", 2)
    w.add_bool("test.flag", True)
    w.add_array("test.words", ["x", "yz"])
    if extra:
        extra(w)
    w.add_tensor("a", rng.standard_normal((2, 4)).astype(np.float32))
    w.add_tensor("b", _raw(rng, Q.Q8_0, 1, 32), raw_dtype=Q.Q8_0)
    _finish(w)


def _walk_boundaries(buf: bytes):
    """(offset, field) for every field boundary of a valid file, in our parser's field names."""
    out = []
    pos = 0

    def take(field, n):
        nonlocal pos
        out.append((pos, field))
        pos += n

    def u32(field):
        v = struct.unpack_from("<I", buf, pos)[0]
        take(field, 4)
        return v

    def u64(field):
        v = struct.unpack_from("<Q", buf, pos)[0]
        take(field, 8)
        return v

    def string(field):
        n = u64(f"{field} length")
        s = buf[pos:pos + n].decode()
        take(field, n)
        return s

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def value(t, field):
        if t == 8:
            string(field)
        elif t == 9:
            et = u32(f"{field} element type")
            n = u64(f"{field} length")
            if et in sizes:
                take(f"{field} elements", sizes[et] * n)
            else:
                for j in range(n):
                    value(et, f"{field}[{j}]")
        else:
            take(field, sizes[t])

    take("header.magic", 4)
    u32("header.version")
    n_t = u64("header.tensor_count")
    n_kv = u64("header.kv_count")
    for i in range(n_kv):
        key = string(f"kv[{i}].key")
        t = u32(f'kv[{i}] "{key}" value type')
        value(t, f'kv[{i}] "{key}" value')
    for i in range(n_t):
        name = string(f"tensor_info[{i}].name")
        nd = u32(f'tensor_info[{i}] "{name}" n_dims')
        for d in range(nd):
            u64(f'tensor_info[{i}] "{name}" ne[{d}]')
        u32(f'tensor_info[{i}] "{name}" type')
        u64(f'tensor_info[{i}] "{name}" offset')
    out.append((pos, "end of tensor infos"))
    return out


def malformed() -> None:
    out = DATA / "malformed"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.gguf"):
        old.unlink()
    base_path = out / "base_valid.gguf"
    write_base(base_path)
    base = base_path.read_bytes()
    r = GGUFReader(base_path)
    ti = {t.name: t for t in r.tensors}
    n_files = 0

    def emit(name: str, data: bytes) -> None:
        nonlocal n_files
        (out / f"{name}.gguf").write_bytes(data)
        n_files += 1

    def at(needle: bytes) -> int:
        i = base.find(needle)
        assert i >= 0 and base.find(needle, i + 1) < 0, needle
        return i

    def patch(data: bytes, off: int, fmt: str, v) -> bytes:
        b = bytearray(data)
        struct.pack_into(fmt, b, off, v)
        return bytes(b)

    def key_value_off(key: str) -> int:
        """Offset of the value type field of `key` (the value follows 4 bytes later)."""
        return at(struct.pack("<Q", len(key)) + key.encode()) + 8 + len(key)

    def tensor_info_off(name: str) -> int:
        return ti[name].field.offset

    # Header.
    emit("bad_magic", b"GGUX" + base[4:])
    emit("bad_magic_ggml", b"ggml" + base[4:])
    emit("version_0", patch(base, 4, "<I", 0))
    emit("version_1", patch(base, 4, "<I", 1))
    emit("version_4", patch(base, 4, "<I", 4))
    emit("version_big_endian", patch(base, 4, ">I", 3))
    emit("tensor_count_absurd", patch(base, 8, "<Q", 1 << 40))
    emit("tensor_count_negative", patch(base, 8, "<q", -1))
    emit("tensor_count_exceeds_file", patch(base, 8, "<Q", 100000))
    emit("kv_count_absurd", patch(base, 16, "<Q", 1 << 62))
    emit("kv_count_exceeds_file", patch(base, 16, "<Q", 1000))
    emit("kv_count_too_small", patch(base, 16, "<Q", 2))  # tensor infos read kv bytes

    # Strings and keys.
    k = at(struct.pack("<Q", len("general.name")) + b"general.name")
    emit("key_length_huge", patch(base, k, "<Q", 1 << 40))
    emit("key_length_past_end", patch(base, k, "<Q", 60000))
    emit("key_invalid_utf8", base[:k + 8] + b"\xff" + base[k + 9:])
    v = key_value_off("general.name") + 4
    emit("string_length_huge", patch(base, v, "<Q", 1 << 60))
    emit("string_length_past_end", patch(base, v, "<Q", 1 << 20))
    emit("string_invalid_utf8", base[:v + 8] + b"\xc3\x28" + base[v + 10:])

    # Value types.
    emit("unknown_value_type", patch(base, key_value_off("test.key_a"), "<I", 13))
    emit("unknown_value_type_negative", patch(base, key_value_off("test.key_a"), "<i", -1))
    emit("invalid_bool", patch(base, key_value_off("test.flag") + 4, "<B", 2))
    a = key_value_off("test.words") + 4
    emit("array_unknown_element_type", patch(base, a, "<I", 99))
    emit("array_length_huge", patch(base, a + 4, "<Q", 1 << 40))
    emit("array_length_past_end", patch(base, a + 4, "<Q", 1 << 20))
    kb = at(b"test.key_b")
    emit("duplicate_key", base[:kb] + b"test.key_a" + base[kb + 10:])

    # Alignment.
    emit("alignment_not_power_of_two", _with_extra(out, lambda w: w.add_uint32("general.alignment", 48)))
    emit("alignment_zero", _with_extra(out, lambda w: w.add_uint32("general.alignment", 0)))
    emit("alignment_wrong_type", _with_extra(out, lambda w: w.add_int32("general.alignment", 32)))

    # Nesting.
    nine = 1
    for _ in range(9):
        nine = [nine]
    emit("nested_too_deep", _with_extra(out, lambda w: w.add_array("test.deep", nine)))

    # Tensor infos.
    ta, tb = tensor_info_off("a"), tensor_info_off("b")
    nd_a = ta + 8 + 1  # after name "a"
    emit("n_dims_5", patch(base, nd_a, "<I", 5))
    emit("n_dims_huge", patch(base, nd_a, "<I", 0xFFFFFFFF))
    emit("dim_zero", patch(base, nd_a + 4 + 8, "<q", 0))
    emit("dim_negative", patch(base, nd_a + 4, "<q", -4))
    both = patch(patch(base, nd_a + 4, "<q", 1 << 32), nd_a + 4 + 8, "<q", 1 << 32)
    emit("shape_overflow", both)
    emit("shape_overflow_i64", patch(patch(base, nd_a + 4, "<q", 1 << 62), nd_a + 12, "<q", 2))
    type_a = nd_a + 4 + 16
    emit("unknown_tensor_type", patch(base, type_a, "<I", 4))  # Q4_2, removed from ggml
    emit("unknown_tensor_type_huge", patch(base, type_a, "<I", 1000))
    nd_b = tb + 8 + 1
    emit("row_size_mismatch", patch(base, nd_b + 4, "<q", 48))  # Q8_0 needs multiples of 32
    emit("size_disagrees_type", patch(base, nd_b + 4 + 8 + 8, "<I", 0))  # b says F32: past end
    off_b = nd_b + 4 + 8 + 8 + 4
    emit("offset_misaligned", patch(base, off_b, "<Q", int(struct.unpack_from("<Q", base, off_b)[0]) + 4))
    emit("offset_outside_file", patch(base, off_b, "<Q", 1 << 40))
    emit("offset_overflow", patch(base, off_b, "<Q", (1 << 64) - 32))
    emit("overlapping_tensors", patch(base, off_b, "<Q", 0))
    nb = at(struct.pack("<Q", 1) + b"b" + struct.pack("<I", 2))
    emit("duplicate_tensor_name", base[:nb + 8] + b"a" + base[nb + 9:])
    emit("tensor_name_too_long", _with_extra(out, None, long_name=True))
    emit("data_truncated", base[:ti["b"].data_offset + 10])

    # Truncated at every field boundary (and an empty file).
    for off, field in _walk_boundaries(base):
        safe = field.replace('"', "").replace(" ", "_").replace("[", "").replace("]", "").replace(".", "_")
        emit(f"truncated_{off:04d}_{safe}", base[:off])
    print(f"wrote {n_files} files under {out.relative_to(ROOT)}")


def _with_extra(out: Path, extra, long_name: bool = False) -> bytes:
    """A base file with extra metadata (or a 64-byte tensor name), as gguf-py writes it."""
    tmp = out / "_tmp.gguf.part"
    if long_name:
        def extra_fn(w):
            w.add_tensor("n" * 64, np.zeros(4, dtype=np.float32))
        write_base(tmp, extra=extra_fn)
    else:
        write_base(tmp, extra=extra)
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "all"
    if cmd == "dump":
        print(json.dumps(dump(Path(argv[2])), indent=1))
    elif cmd == "reference":
        reference()
    elif cmd == "malformed":
        malformed()
    elif cmd == "ours":
        for p in sorted((DATA / "writer").glob("*.gguf")):
            write_dump(p, p.with_suffix(".gguf_py.json"))
    elif cmd == "all":
        reference()
        malformed()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
