#!/usr/bin/env python3
"""Writes the anchor tool's 12-byte APRT layout, independently of our Rust writer.

Layout (aprender `apr trace --save-tensor`): b"APRT", u32 LE layer (0xFFFFFFFF = whole
model), u32 LE element count, then the f32 values little-endian. Values are given as bit
patterns so NaN payloads, -0.0 and subnormals are exact. Run from this directory:
    python3 gen_anchor12.py
"""
import os
import struct

WHOLE_MODEL = 0xFFFFFFFF

# (path, layer, f32 bit patterns)
FILES = [
    # layer 2 ffn_gate: 1.5, -2.25, quiet NaN with payload 1, negative signalling-range NaN,
    # -0.0, the smallest positive subnormal, +Inf, the largest negative subnormal
    ("anchor12/layer-2/ffn_gate.bin", 2,
     [0x3FC00000, 0xC0100000, 0x7FC00001, 0xFFA00000,
      0x80000000, 0x00000001, 0x7F800000, 0x807FFFFF]),
    # whole-model lm_head: 1.0, 2.0, 3.0
    ("anchor12/lm_head.bin", WHOLE_MODEL, [0x3F800000, 0x40000000, 0x40400000]),
]

for path, layer, bits in FILES:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"APRT" + struct.pack("<II", layer, len(bits)))
        f.write(struct.pack("<%dI" % len(bits), *bits))
