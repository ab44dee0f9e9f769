#!/usr/bin/env bash
# Runs llama.cpp's MUL_MAT perf (tools/llama_perf/run.sh) and our criterion matvec bench in
# alternating rounds, then prints the docs/perf.md table (best round of each side).
#
#   tools/llama_perf/compare.sh [ROUNDS]     (default 2; output under $OUT, default /tmp/llama_perf/cmp)
#
# The machine is shared: the load average is recorded before each run, and the best round of
# each side is what the table reports.
set -euo pipefail
ROUNDS=${1:-2}
OUT=${OUT:-/tmp/llama_perf/cmp}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "$OUT"
cd "$ROOT"
cargo bench -p apr-engine --bench matvec --no-run
for r in $(seq 1 "$ROUNDS"); do
    echo "round $r llama.cpp: $(cat /proc/loadavg)" | tee -a "$OUT/load.txt"
    "$HERE/run.sh" 1 2 > "$OUT/llama_r$r.log" 2>&1
    echo "round $r ours: $(cat /proc/loadavg)" | tee -a "$OUT/load.txt"
    rm -rf target/criterion
    cargo bench -p apr-engine --bench matvec > "$OUT/ours_r$r.log" 2>&1
    rm -rf "$OUT/criterion_r$r" && cp -r target/criterion "$OUT/criterion_r$r"
done
python3 "$HERE/table.py" --llama "$OUT"/llama_r*.log --criterion "$OUT"/criterion_r* | tee "$OUT/table.md"
