"""Dump llama.cpp's own intermediate tensors as APRT files with our stage names.

For each model, one prompt (the token ids of `tests/fixtures/reference/<stem>/logits.json`
prompt 0, so no tokenizer is involved) is decoded once by llama.cpp (through
llama-cpp-python's low-level bindings) with an eval callback (`cb_eval`). The callback asks
for every graph node whose name is one llama.cpp's graph builders give (`cb(cur, "ffn_out",
il)` → `ffn_out-<il>`) and copies it, element by element along its strides `nb`, as f32.
The copies are then mapped to our stage vocabulary (docs/llama-dumps.md has the table and
the reasons) and written in our APRT layout, version 1 (docs/aprt.md):

    OUT/<stem>/tokens.json
    OUT/<stem>/<stage>.bin               whole-model stages
    OUT/<stem>/layer-<N>/<stage>.bin     per-layer stages

Usage (from the repository root):

    /work/ref/venv/bin/python tools/llama_dumps/dump.py --out tests/fixtures/llama_dumps

`--prompt N` feeds reference prompt N instead of 0; `--stages a,b` writes only those stages;
`--dir D` writes one model's files into D itself. The expert-routing references of the
qwen3moe fixture (every prompt's router logits, for engine/tests/model_parity.rs) are made so:

    for i in 0 1 2 3; do /work/ref/venv/bin/python tools/llama_dumps/dump.py --prompt $i \
        --stages moe_router_logits --dir tests/fixtures/reference/qwen3moe-Q4_K_M/routing-$i \
        qwen3moe-Q4_K_M; done

Context settings are those of tools/fixtures/references.py: n_ctx 256, n_batch 256,
2 threads, every position an output (logits_all), no flash attention, default (f16) KV cache.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

# One fixture per architecture (llama twice: F32 isolates arithmetic from quantization).
DEFAULT_MODELS = [
    "llama-F32",
    "llama-Q4_0",
    "qwen2-Q8_0",
    "qwen3-Q4_K_M",
    "qwen3moe-Q4_K_M",
]

GGML_MAX_DIMS = 4
GGML_MAX_SRC = 10
GGML_MAX_OP_PARAMS = 64
GGML_MAX_NAME = 64

# ggml type ids (ggml.h enum ggml_type) for the tensors we copy.
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_I32 = 26


class GgmlTensor(ctypes.Structure):
    """`struct ggml_tensor` of ggml.h (the vendored llama.cpp of llama-cpp-python 0.3.36)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def load_ggml(llama_cpp_module) -> ctypes.CDLL:
    lib_dir = Path(llama_cpp_module.__file__).parent / "lib"
    ggml = ctypes.CDLL(str(lib_dir / "libggml-base.so"))
    ggml.ggml_op_name.argtypes = [ctypes.c_int]
    ggml.ggml_op_name.restype = ctypes.c_char_p
    ggml.ggml_get_name.argtypes = [ctypes.c_void_p]
    ggml.ggml_get_name.restype = ctypes.c_char_p
    ggml.ggml_is_contiguous.argtypes = [ctypes.c_void_p]
    ggml.ggml_is_contiguous.restype = ctypes.c_bool
    ggml.ggml_nbytes.argtypes = [ctypes.c_void_p]
    ggml.ggml_nbytes.restype = ctypes.c_size_t
    ggml.ggml_backend_buffer_is_host.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_buffer_is_host.restype = ctypes.c_bool
    return ggml


# Names llama.cpp's graph builders give (`<name>-<il>` per layer) that we may map.
WANTED = re.compile(
    r"^(embd|result_norm|result_output"
    r"|(attn_norm|Qcur|Kcur|Vcur|Qcur_normed|Kcur_normed|kqv_out|attn_out|ffn_inp|ffn_norm"
    r"|ffn_gate|ffn_up|ffn_swiglu|ffn_out|ffn_moe_logits|ffn_moe_topk|ffn_moe_weights_norm"
    r"|ffn_moe_out|l_out)-\d+)$"
)


class Recorder:
    """The eval callback: keeps a copy of every wanted node, in graph order."""

    def __init__(self, ggml: ctypes.CDLL):
        self.ggml = ggml
        self.enabled = False
        self.nodes: list[dict] = []
        self.error: BaseException | None = None

    def tensor_name(self, ptr: int | None) -> str:
        if not ptr:
            return ""
        return self.ggml.ggml_get_name(ptr).decode()

    def wants(self, t: GgmlTensor, ptr: int) -> bool:
        name = t.name.decode()
        if WANTED.match(name):
            return True
        # The output projection of attention has no name of its own in qwen2/qwen3/qwen3moe;
        # it is the MUL_MAT whose weight is blk.<il>.attn_output.weight.
        return self.op(t) == "MUL_MAT" and re.fullmatch(
            r"blk\.\d+\.attn_output\.weight", self.tensor_name(t.src[0])
        ) is not None

    def op(self, t: GgmlTensor) -> str:
        return self.ggml.ggml_op_name(t.op).decode()

    def copy(self, t: GgmlTensor, ptr: int) -> np.ndarray:
        """The tensor's values as f32, shape (ne3, ne2, ne1, ne0), read along its strides."""
        if t.buffer and not self.ggml.ggml_backend_buffer_is_host(t.buffer):
            raise RuntimeError(f"{t.name.decode()}: not in host memory")
        dtype = {GGML_TYPE_F32: "<f4", GGML_TYPE_F16: "<f2", GGML_TYPE_I32: "<i4"}.get(t.type)
        if dtype is None:
            raise RuntimeError(f"{t.name.decode()}: ggml type {t.type} not handled")
        ne = [int(t.ne[i]) for i in range(GGML_MAX_DIMS)]
        nb = [int(t.nb[i]) for i in range(GGML_MAX_DIMS)]
        # Bytes spanned by the view: the last element's offset plus one element.
        span = sum((n - 1) * s for n, s in zip(ne, nb)) + np.dtype(dtype).itemsize
        raw = (ctypes.c_char * span).from_address(t.data)
        arr = np.lib.stride_tricks.as_strided(
            np.frombuffer(raw, dtype=np.uint8, count=span),
            shape=(ne[3], ne[2], ne[1], ne[0], np.dtype(dtype).itemsize),
            strides=(nb[3], nb[2], nb[1], nb[0], 1),
        )
        values = np.ascontiguousarray(arr).view(dtype).reshape(ne[3], ne[2], ne[1], ne[0])
        if self.ggml.ggml_is_contiguous(ptr):
            # Cross-check the strided read against the plain contiguous bytes.
            flat = np.frombuffer(raw, dtype=dtype, count=int(np.prod(ne)))
            assert np.array_equal(values.reshape(-1).view(np.uint8), flat.view(np.uint8))
        return values.astype(np.float32)

    def __call__(self, ptr: int, ask: bool, _user: int) -> bool:
        try:
            if not self.enabled:
                return not ask
            t = GgmlTensor.from_address(ptr)
            if ask:
                return self.wants(t, ptr)
            self.nodes.append(
                {
                    "name": t.name.decode(),
                    "op": self.op(t),
                    "src0": self.tensor_name(t.src[0]),
                    "ne": [int(t.ne[i]) for i in range(GGML_MAX_DIMS)],
                    "values": self.copy(t, ptr),
                }
            )
            return True
        except BaseException as e:  # noqa: BLE001 - surfaced after llama_decode returns
            if self.error is None:
                self.error = e
            return False


def _quiet(_level: int, _text: bytes, _user: int) -> None:
    pass


_QUIET = None


def run_llama(model: Path, tokens: list[int]) -> tuple[list[dict], np.ndarray]:
    """Decode `tokens` once with the eval callback; the recorded nodes and all logits."""
    import llama_cpp

    global _QUIET
    if _QUIET is None:
        _QUIET = llama_cpp.llama_log_callback(_quiet)  # kept alive for the process
    ggml = load_ggml(llama_cpp)
    llama_cpp.llama_log_set(_QUIET, None)
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mdl = llama_cpp.llama_model_load_from_file(str(model).encode(), mparams)
    if not mdl:
        raise RuntimeError(f"llama.cpp could not load {model}")
    rec = Recorder(ggml)
    callback = llama_cpp.ggml_backend_sched_eval_callback(rec)
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = 256
    cparams.n_batch = 256
    cparams.n_ubatch = 256
    cparams.n_threads = 2
    cparams.n_threads_batch = 2
    cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    cparams.cb_eval = callback
    cparams.cb_eval_user_data = None
    ctx = llama_cpp.llama_init_from_model(mdl, cparams)
    if not ctx:
        raise RuntimeError("llama_init_from_model failed")
    n = len(tokens)
    batch = llama_cpp.llama_batch_init(n, 0, 1)
    try:
        batch.n_tokens = n
        for i, tok in enumerate(tokens):
            batch.token[i] = tok
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1  # every position an output, as logits_all
        rec.enabled = True
        rc = llama_cpp.llama_decode(ctx, batch)
        rec.enabled = False
        if rec.error is not None:
            raise rec.error
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(mdl))
        ptr = llama_cpp.llama_get_logits(ctx)
        logits = np.ctypeslib.as_array(ptr, shape=(n * n_vocab,)).reshape(n, n_vocab).copy()
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(mdl)
    del callback
    return rec.nodes, logits


def as_positions(node: dict, n_tokens: int) -> np.ndarray:
    """[positions, features]: ggml [ne0, ne1(, ne2)] with tokens in the outermost used dim.

    Per-head tensors [head_dim, n_head, n_tokens] flatten to n_head·head_dim features in
    head-major order, which is our per-position layout (head h at h·head_dim..).
    """
    v = node["values"]
    ne = node["ne"]
    if ne[3] != 1:
        raise ValueError(f"{node['name']}: 4-d tensor {ne}")
    if ne[2] == 1:
        positions, features = ne[1], ne[0]
    else:
        positions, features = ne[2], ne[0] * ne[1]
    if positions != n_tokens:
        raise ValueError(f"{node['name']} ({node['op']}): {ne} has {positions} positions, not {n_tokens}")
    return v.reshape(positions, features)


# The weight each named matrix product must use (a second check of the mapping).
MATMUL_WEIGHT = {
    "ffn_gate": "blk.{il}.ffn_gate.weight",
    "ffn_up": "blk.{il}.ffn_up.weight",
    "ffn_out": "blk.{il}.ffn_down.weight",
    "ffn_moe_logits": "blk.{il}.ffn_gate_inp.weight",
}


def check_weight(node: dict, weight: str) -> None:
    if node["src0"] != weight:
        raise ValueError(f"{node['name']} ({node['op']}): weight {node['src0']}, expected {weight}")


def map_stages(nodes: list[dict], n_tokens: int) -> dict[tuple[int | None, str], np.ndarray]:
    """llama.cpp's nodes → our (layer, stage) tensors. Raises on anything unexpected."""
    out: dict[tuple[int | None, str], np.ndarray] = {}
    qkv: dict[tuple[int, str], dict[str, np.ndarray]] = {}

    def put(layer: int | None, stage: str, value: np.ndarray) -> None:
        if (layer, stage) in out:
            raise ValueError(f"two llama.cpp tensors map to layer {layer} {stage}")
        out[(layer, stage)] = value

    for node in nodes:
        name, op, src0 = node["name"], node["op"], node["src0"]
        m = re.fullmatch(r"(.+)-(\d+)", name)
        base, il = (m.group(1), int(m.group(2))) if m else (name, None)
        whole = {"embd": ("GET_ROWS", "embedding"), "result_norm": ("MUL", "final_norm"),
                 "result_output": ("MUL_MAT", "lm_head")}
        if il is None and base in whole:
            want_op, stage = whole[base]
            if op != want_op:
                raise ValueError(f"{name}: op {op}, expected {want_op}")
            if base == "result_output" and src0 not in ("output.weight", "token_embd.weight"):
                raise ValueError(f"{name}: weight {src0}")
            put(None, stage, as_positions(node, n_tokens))
            continue
        # attn_out: the wo product, found by its weight (qwen2/qwen3/qwen3moe leave it
        # unnamed; llama names this same node attn_out-L).
        wo = re.fullmatch(r"blk\.(\d+)\.attn_output\.weight", src0) if op == "MUL_MAT" else None
        if wo:
            if base not in ("attn_out", "") and not base.startswith("node_"):
                raise ValueError(f"wo product named {name}")
            put(int(wo.group(1)), "attn_out", as_positions(node, n_tokens))
            continue
        if il is None:
            continue
        if base in ("Qcur", "Kcur", "Vcur"):
            part = base[0].lower()
            if op == "MUL_MAT":
                check_weight(node, f"blk.{il}.attn_{part}.weight")
                qkv.setdefault((il, "qkv_matmul"), {})[part] = as_positions(node, n_tokens)
            elif op == "ADD":
                qkv.setdefault((il, "qkv_bias"), {})[part] = as_positions(node, n_tokens)
            elif op == "ROPE" and part in "qk":
                put(il, f"{part}_post_rope", as_positions(node, n_tokens))
            # RESHAPE/VIEW: the same values again under the same name; nothing new.
            continue
        simple = {
            "attn_norm": ("MUL", ["attn_norm"]),
            "Qcur_normed": ("MUL", ["q_norm"]),
            "Kcur_normed": ("MUL", ["k_norm"]),
            "kqv_out": ("CONT", ["attention"]),
            "ffn_inp": ("ADD", ["post_attn_residual"]),
            "ffn_norm": ("MUL", ["ffn_norm"]),
            "ffn_gate": ("MUL_MAT", ["ffn_gate"]),
            "ffn_up": ("MUL_MAT", ["ffn_up"]),
            "ffn_swiglu": ("GLU", ["ffn_swigl"]),
            "ffn_out": ("MUL_MAT", ["ffn_out"]),
            "ffn_moe_logits": ("MUL_MAT", ["moe_router_logits"]),
            "ffn_moe_topk": ("VIEW", ["moe_topk_ids"]),
            "ffn_moe_weights_norm": ("DIV", ["moe_topk_weights"]),
            "ffn_moe_out": ("ADD", ["moe_out", "ffn_out"]),
            "l_out": ("ADD", ["post_ffn_residual", "layer_output"]),
        }
        if base == "attn_out":
            raise ValueError(f"{name} ({op}) is not the wo product (an output bias?)")
        if base not in simple:
            raise ValueError(f"unmapped llama.cpp tensor {name} ({op})")
        want_op, stages = simple[base]
        if op != want_op:
            raise ValueError(f"{name}: op {op}, expected {want_op}")
        if base in MATMUL_WEIGHT:
            check_weight(node, MATMUL_WEIGHT[base].format(il=il))
        value = as_positions(node, n_tokens)
        for stage in stages:
            put(il, stage, value)
    for (il, stage), parts in qkv.items():
        if sorted(parts) != ["k", "q", "v"]:
            raise ValueError(f"layer {il} {stage}: only {sorted(parts)} of q, k, v")
        put(il, stage, np.concatenate([parts["q"], parts["k"], parts["v"]], axis=1))
    return out


def aprt_bytes(layer: int | None, stage: str, values: np.ndarray) -> bytes:
    """Our APRT layout, version 1 (docs/aprt.md)."""
    positions, features = values.shape
    name = stage.encode()
    assert 1 <= len(name) <= 64
    header = b"APRT" + struct.pack(
        "<IIIQQI",
        0x8000_0001,
        0,  # dtype f32
        0xFFFF_FFFF if layer is None else layer,
        positions,
        features,
        len(name),
    )
    header += name + b"\0" * ((-len(name)) % 4)
    return header + np.ascontiguousarray(values, dtype="<f4").tobytes()


WHOLE_MODEL = {"embedding", "final_norm", "lm_head"}


def dump(stem: str, d: Path, prompt_index: int = 0, only: set[str] | None = None) -> dict:
    model = REPO / "tests/fixtures/models" / f"{stem}.gguf"
    ref = json.loads((REPO / "tests/fixtures/reference" / stem / "logits.json").read_text())
    prompt = ref["prompts"][prompt_index]
    tokens = [int(t) for t in prompt["tokens"]]
    nodes, logits = run_llama(model, tokens)
    stages = map_stages(nodes, len(tokens))

    # The result_output we captured is the logits llama.cpp returns; and the logits equal
    # the committed reference (same library, same settings) up to thread scheduling.
    lm = stages[(None, "lm_head")]
    if not np.array_equal(lm, logits):
        raise ValueError(f"{stem}: result_output differs from llama_get_logits")
    committed = np.fromfile(
        REPO / "tests/fixtures/reference" / stem / prompt["logits_file"], dtype="<f4"
    ).reshape(len(tokens), -1)
    ref_maxdiff = float(np.max(np.abs(committed - logits)))

    if only is not None:
        stages = {k: v for k, v in stages.items() if k[1] in only}
        if not stages:
            raise ValueError(f"{stem}: none of the stages {sorted(only)} was dumped")
    if d.exists():
        for f in sorted(d.rglob("*.bin")):
            f.unlink()
    d.mkdir(parents=True, exist_ok=True)
    for (layer, stage), value in sorted(stages.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0, kv[0][1])):
        if (layer is None) != (stage in WHOLE_MODEL):
            raise ValueError(f"{stage} at layer {layer}")
        path = d / (f"{stage}.bin" if layer is None else f"layer-{layer}/{stage}.bin")
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(aprt_bytes(layer, stage, value))
    (d / "tokens.json").write_text(
        json.dumps({"model": model.name, "prompt": prompt_index, "text": prompt["text"], "tokens": tokens}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    per_layer = sorted({s for (l, s) in stages if l is not None})
    return {
        "model": stem,
        "tokens": len(tokens),
        "files": len(stages),
        "per_layer_stages": per_layer,
        "logits_max_abs_diff_vs_committed_reference": ref_maxdiff,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "tests/fixtures/llama_dumps")
    p.add_argument("--prompt", type=int, default=0, help="index of the reference prompt to feed")
    p.add_argument("--stages", help="comma list: write only these stages (default: all)")
    p.add_argument("--dir", type=Path, help="write into this directory (one model only) instead of OUT/<stem>")
    p.add_argument("models", nargs="*", default=DEFAULT_MODELS, help="model stems")
    args = p.parse_args()
    if args.dir is not None and len(args.models) != 1:
        p.error("--dir takes exactly one model")
    only = set(args.stages.split(",")) if args.stages else None
    for stem in args.models:
        summary = dump(stem, args.dir or args.out / stem, args.prompt, only)
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
