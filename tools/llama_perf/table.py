#!/usr/bin/env python3
"""Builds the docs/perf.md table: our matvec GB/s (criterion) next to llama.cpp's
(test-backend-ops perf -o MUL_MAT), per type, shape and thread count.

    table.py --llama LOG [LOG...] --criterion DIR [DIR...]

Each LOG is the output of tools/llama_perf/run.sh; each DIR a copy of target/criterion after
`cargo bench --bench matvec`. With several rounds, the fastest round of each side counts
(the machine is shared; the best round is the least disturbed one). GB/s = 1e9 bytes/s of
weight bytes; our time is criterion's median per iteration, llama.cpp's its mean us/run.
"""
import argparse
import glob
import json
import os
import re

# Bytes per block and values per block (ggml-common.h).
BLOCK = {
    "f32": (4, 1), "f16": (2, 1), "bf16": (2, 1), "q4_0": (18, 32), "q4_1": (20, 32),
    "q5_0": (22, 32), "q5_1": (24, 32), "q8_0": (34, 32), "q2_K": (84, 256),
    "q3_K": (110, 256), "q4_K": (144, 256), "q5_K": (176, 256), "q6_K": (210, 256),
}
ORDER = ["q4_K", "q6_K", "q8_0", "q4_0", "q5_K", "q4_1", "q5_0", "q5_1", "q3_K", "q2_K",
         "f16", "bf16", "f32"]


def weight_bytes(ty, rows, cols):
    b, n = BLOCK[ty]
    return rows * cols // n * b


def llama_times(logs):
    """{(type, rows, cols, threads): seconds}, best over logs."""
    best = {}
    pat = re.compile(r"MUL_MAT\(type_a=(\w+),type_b=f32,m=(\d+),n=1,k=(\d+),.*?([\d.]+) us/run")
    for log in logs:
        threads = None
        for line in open(log, errors="replace"):
            m = re.match(r"== threads=(\d+)", line)
            if m:
                threads = int(m.group(1))
                continue
            m = pat.search(line)
            if m and threads:
                key = (m.group(1), int(m.group(2)), int(m.group(3)), threads)
                t = float(m.group(4)) * 1e-6
                best[key] = min(best.get(key, t), t)
    return best


def our_times(dirs):
    best, stream = {}, {}
    for d in dirs:
        for f in glob.glob(os.path.join(d, "matvec", "*", "*", "new", "estimates.json")):
            bench = json.load(open(os.path.join(os.path.dirname(f), "benchmark.json")))
            m = re.match(r"(\d+)x(\d+)/(\d+)t", bench["value_str"])
            ty = bench["function_id"]
            ty = ty if ty in BLOCK else ty.lower().replace("_k", "_K")
            key = (ty, int(m.group(1)), int(m.group(2)), int(m.group(3)))
            t = json.load(open(f))["median"]["point_estimate"] * 1e-9
            best[key] = min(best.get(key, t), t)
        for f in glob.glob(os.path.join(d, "stream_copy", "*", "new", "estimates.json")):
            bench = json.load(open(os.path.join(os.path.dirname(f), "benchmark.json")))
            t = json.load(open(f))["median"]["point_estimate"] * 1e-9
            gbs = bench["throughput"]["Bytes"] / t / 1e9
            k = bench["value_str"]
            stream[k] = max(stream.get(k, 0), gbs)
    return best, stream


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama", nargs="*", default=[])
    ap.add_argument("--criterion", nargs="*", default=[])
    a = ap.parse_args()
    ll = llama_times(a.llama)
    ours, stream = our_times(a.criterion)
    for k in sorted(stream):
        print(f"STREAM copy ({k}): {stream[k]:.1f} GB/s\n")
    print("| type | rows x cols | threads | ours GB/s | llama.cpp GB/s | ours / llama.cpp |")
    print("|---|---|---|---:|---:|---:|")
    keys = sorted(set(ours) | set(ll),
                  key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, k[2], k[3]))
    for k in keys:
        ty, rows, cols, th = k
        if ty not in BLOCK:
            continue
        wb = weight_bytes(ty, rows, cols)
        o = wb / ours[k] / 1e9 if k in ours else None
        l = wb / ll[k] / 1e9 if k in ll else None
        r = f"{o / l:.2f}" if o and l else "–"
        fo = f"{o:.1f}" if o else "–"
        fl = f"{l:.1f}" if l else "–"
        print(f"| {ty} | {rows}x{cols} | {th} | {fo} | {fl} | {r} |")


if __name__ == "__main__":
    main()
