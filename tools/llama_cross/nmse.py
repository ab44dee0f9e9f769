"""How far llama.cpp's logits move between two builds of itself.

Recomputes the committed reference logits (tests/fixtures/reference/<stem>/logits-<i>.f32)
with whatever libllama llama-cpp-python loads -- point LLAMA_CPP_LIB_PATH (and
LD_LIBRARY_PATH) at another build, e.g. the AVX2-only one of build.sh -- with the settings of
tools/fixtures/references.py, from the committed token ids (no tokenizer involved), and prints
the NMSE per prompt against the committed logits, in the form engine/tests/model_parity.rs
prints ours. `--n-batch N` feeds the prompt N tokens per decode call instead (the same build,
another valid way to run it: N = 1 takes llama.cpp's one-token mat-vec paths).

  LLAMA_CPP_LIB_PATH=$D LD_LIBRARY_PATH=$D python tools/llama_cross/nmse.py [STEM ...]
  python tools/llama_cross/nmse.py --n-batch 1 [STEM ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests/fixtures/reference"
MODELS = REPO / "tests/fixtures/models"


def nmse(reference: np.ndarray, other: np.ndarray) -> float:
    r = reference.astype(np.float64)
    return float(((other.astype(np.float64) - r) ** 2).sum() / (r**2).sum())


def main() -> int:
    import llama_cpp

    stems = sorted(p.name for p in REFERENCE.iterdir() if (p / "logits.json").exists())
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stems", nargs="*", default=stems, help="fixture model stems (default: all)")
    p.add_argument("--n-batch", type=int, default=256, help="prompt tokens per decode call")
    args = p.parse_args()
    worst = {}
    for stem in args.stems:
        ref = json.loads((REFERENCE / stem / "logits.json").read_text())
        # The settings of tools/fixtures/references.py.
        llm = llama_cpp.Llama(
            str(MODELS / f"{stem}.gguf"),
            n_ctx=256,
            n_batch=args.n_batch,
            n_threads=2,
            n_threads_batch=2,
            logits_all=True,
            verbose=False,
        )
        values = []
        for i, prompt in enumerate(ref["prompts"]):
            tokens = [int(t) for t in prompt["tokens"]]
            llm.reset()
            llm.eval(tokens)
            ours = np.array(llm.scores[: len(tokens)], dtype=np.float32)
            committed = np.fromfile(REFERENCE / stem / prompt["logits_file"], dtype="<f4")
            committed = committed.reshape(ours.shape)
            per_pos = [nmse(committed[t], ours[t]) for t in range(len(tokens))]
            v = nmse(committed, ours)
            values.append(v)
            over = sum(x > 1e-4 for x in per_pos)
            # Issue 4's decision criteria: top-1 where the reference margin exceeds 1e-3 of
            # the logits' std, and the 32 greedy tokens.
            clear = [m > 1e-3 * s for m, s in zip(prompt["top1_margin"], prompt["logits_std"])]
            flips = sum(c and int(np.argmax(ours[t])) != prompt["top1"][t] for t, c in enumerate(clear))
            steps = prompt["greedy_steps"]
            all_clear = all(st["margin"] > 1e-3 * st["std"] for st in steps)
            identical, row = 0, ours[-1]
            for st in steps:
                tok = int(np.argmax(row))
                if tok != st["token"]:
                    break
                identical += 1
                llm.eval([tok])
                row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            print(
                f"{stem:>20} prompt {i}: NMSE {v:.2e} (worst position {max(per_pos):.2e}; "
                f"{over}/{len(tokens)} positions over 1e-4); top-1 differs at {flips} of "
                f"{sum(clear)} positions with margin > 1e-3 std; greedy {identical}/{len(steps)} "
                f"identical (margins all > 1e-3 std: {'yes' if all_clear else 'no'})",
                flush=True,
            )
        worst[stem] = max(values)
    print(json.dumps({"worst_nmse_per_model": worst}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
