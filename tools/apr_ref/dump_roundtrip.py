#!/usr/bin/env python3
"""The outside reference for `apr convert`'s GGUF -> APR -> GGUF round trip.

Runs our `apr` binary to convert a committed fixture to APR and back to GGUF (in a temporary
directory), then reads both the original fixture and the round-tripped GGUF with gguf-py
(pinned in requirements.txt) and writes what gguf-py sees -- header facts, every metadata key
with its type and value, every tensor's name, type, shape, sizes, offset and the sha256 of its
bytes -- to

    engine/tests/data/apr/<fixture>.roundtrip.gguf_py.json   (our APR -> GGUF output)
    engine/tests/data/apr/<fixture>.original.gguf_py.json    (the fixture itself)

engine/tests/apr_reference.rs compares our round trip against the first and the first against
the second. Floats are written as their IEEE-754 bit patterns, so the comparison is exact.

Usage (from the repository root, after `cargo build -p apr-engine --bin apr`):

    /work/ref/venv/bin/python tools/apr_ref/dump_roundtrip.py [--apr target/debug/apr] \
        [--fixture qwen3moe-Q4_K_M]
"""

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np
from gguf import GGUFReader, GGUFValueType

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "engine/tests/data/apr"

FLOAT_BITS = {GGUFValueType.FLOAT32: np.uint32, GGUFValueType.FLOAT64: np.uint64}


def scalar(part: np.ndarray, vtype: GGUFValueType):
    """One scalar from its gguf-py part: strings decoded, floats as bit patterns."""
    if vtype == GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    if vtype in FLOAT_BITS:
        return int(np.asarray(part).view(FLOAT_BITS[vtype])[0])
    if vtype == GGUFValueType.BOOL:
        return bool(part[0])
    return int(part[0])


def field_value(f) -> tuple[str, object]:
    vtype = GGUFValueType(f.types[0])
    if vtype != GGUFValueType.ARRAY:
        return vtype.name, scalar(f.parts[f.data[0]], vtype)
    if len(f.types) != 2:
        sys.exit(f"{f.name}: nested arrays are not in the fixtures; extend this script")
    etype = GGUFValueType(f.types[1])
    items = [scalar(f.parts[i], etype) for i in f.data]
    return vtype.name, {"element_type": etype.name, "items": items}


def dump(path: Path) -> dict:
    r = GGUFReader(path)
    meta = []
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue  # header pseudo-fields
        vtype, value = field_value(f)
        meta.append({"key": name, "type": vtype, "value": value})
    tensors = []
    for t in r.tensors:
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "ne": [int(d) for d in t.shape],
            "n_elements": int(t.n_elements),
            "n_bytes": int(t.n_bytes),
            "offset": int(t.field.parts[5][0]),
            "sha256": hashlib.sha256(t.data.tobytes()).hexdigest(),
        })
    data = path.read_bytes()
    return {
        "producer": "gguf-py GGUFReader (version pinned in tools/apr_ref/requirements.txt)",
        "file_size": len(data),
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "version": int(r.fields["GGUF.version"].parts[0][0]),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": meta,
        "tensors": tensors,
    }


def write(obj: dict, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--apr", default=str(ROOT / "target/debug/apr"), help="our apr binary")
    ap.add_argument("--fixture", default="qwen3moe-Q4_K_M", help="tests/fixtures/models/<name>.gguf")
    args = ap.parse_args()
    if not Path(args.apr).is_file():
        sys.exit(f"{args.apr}: not found; run `cargo build -p apr-engine --bin apr` first")
    src = ROOT / "tests/fixtures/models" / f"{args.fixture}.gguf"
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        apr_path = Path(tmp) / "m.apr"
        back = Path(tmp) / "m.gguf"
        subprocess.run([args.apr, "convert", str(src), "-o", str(apr_path)], check=True)
        subprocess.run([args.apr, "convert", str(apr_path), "-o", str(back)], check=True)
        write(dump(back), OUT / f"{args.fixture}.roundtrip.gguf_py.json")
    write(dump(src), OUT / f"{args.fixture}.original.gguf_py.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
