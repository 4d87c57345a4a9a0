#!/usr/bin/python3
"""Write llamatron's reference test cases (safetensors files) into OUTDIR.

Usage: /usr/bin/python3 tests/reference/make_cases.py OUTDIR

Each file is named {op}_{case}_{prec}.safetensors. Inputs are stored as F32
(or I32 for integer tensors) and hold exactly the values the reference used;
reference outputs and gradients are computed in float64 and stored as F64.
Scalar parameters are in the safetensors metadata as strings.
"""
import sys
import traceback
import zlib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_ref as ref  # noqa: E402
import st  # noqa: E402

PRECISIONS = ("fp32", "bf16")


class Inputs:
    """Random float64 inputs, rounded to what the given precision can store."""

    def __init__(self, prec):
        self.prec = prec

    def round(self, x):
        x = x.to(torch.float32)
        if self.prec == "bf16":
            x = x.to(torch.bfloat16)
        return x.to(torch.float64)

    def normal(self, *shape, std=1.0, mean=0.0):
        return self.round(torch.randn(shape, dtype=torch.float64) * std + mean)

    def norm_weight(self, *shape):
        return self.normal(*shape, std=0.1, mean=1.0)


def vjp(fn, args, dy):
    """Return (fn(*args), gradients of sum(fn(*args) * dy) w.r.t. args)."""
    args = [a.detach().clone().requires_grad_(True) for a in args]
    y = fn(*args)
    return y.detach(), torch.autograd.grad(y, args, dy)


# ------------------------------------------------------------- op cases

def rmsnorm_case(g, N, C, eps="1e-5"):
    x, w, dy = g.normal(N, C), g.norm_weight(C), g.normal(N, C)
    y, (dx, dw) = vjp(lambda x, w: ref.rmsnorm(x, w, float(eps)), [x, w], dy)
    return {"x": x, "w": w, "dy": dy}, {"y": y, "dx": dx, "dw": dw}, {"eps": eps}


def rope_case(g, B, T, H, D, offset, theta):
    x, dy = g.normal(B, T, H, D), g.normal(B, T, H, D)
    y, (dx,) = vjp(lambda x: ref.rope(x, float(theta), int(offset)), [x], dy)
    return {"x": x, "dy": dy}, {"y": y, "dx": dx}, {"theta": theta, "offset": offset}


def attention_case(g, B, T, H, KV, D):
    q, k, v = g.normal(B, T, H, D), g.normal(B, T, KV, D), g.normal(B, T, KV, D)
    dy = g.normal(B, T, H, D)
    y, (dq, dk, dv) = vjp(lambda q, k, v: ref.attention(q, k, v)[0], [q, k, v], dy)
    _, lse = ref.attention(q, k, v)
    return ({"q": q, "k": k, "v": v, "dy": dy},
            {"y": y, "lse": lse, "dq": dq, "dk": dk, "dv": dv},
            {"n_heads": str(H), "n_kv_heads": str(KV)})


# Packed documents: where each row of a [B, T] window has an eod (Megatron's rule; the C++ side
# finds the documents from the same tokens). Tiles are 8, 64 or 128 positions.
DOC_EOD = 7
DOC_PATTERNS = {
    "len1": lambda T: [list(range(0, 12)) + [40], [T - 1]],            # documents of length 1; one spanning the row
    "edges": lambda T: [[7, 15, 62, 63, 64, 127], [8, 16, 63, 65, 128]],  # starts at tile edges and one past them
    "tiny": lambda T: [list(range(2, T, 3)), list(range(0, T, 2))],     # many tiny documents
    "whole": lambda T: [[], [T - 1]],                                    # one document (an eod as the last input)
}


def doc_tokens(pattern, B, T):
    ids = torch.randint(0, DOC_EOD, (B, T))  # below the eod id
    for b, where in enumerate(DOC_PATTERNS[pattern](T)[:B]):
        ids[b, [i for i in where if i < T]] = DOC_EOD
    return ids


def attention_docs_case(g, B, T, H, KV, D, pattern):
    q, k, v = g.normal(B, T, H, D), g.normal(B, T, KV, D), g.normal(B, T, KV, D)
    dy = g.normal(B, T, H, D)
    tokens = doc_tokens(pattern, B, T)
    allowed, _ = ref.documents(tokens, DOC_EOD, True, False)
    y, (dq, dk, dv) = vjp(lambda q, k, v: ref.attention(q, k, v, allowed)[0], [q, k, v], dy)
    _, lse = ref.attention(q, k, v, allowed)
    return ({"q": q, "k": k, "v": v, "dy": dy, "tokens": tokens},
            {"y": y, "lse": lse, "dq": dq, "dk": dk, "dv": dv},
            {"n_heads": str(H), "n_kv_heads": str(KV), "eod_id": str(DOC_EOD)})


def rope_docs_case(g, B, T, H, D, theta, pattern):
    x, dy = g.normal(B, T, H, D), g.normal(B, T, H, D)
    tokens = doc_tokens(pattern, B, T)
    _, positions = ref.documents(tokens, DOC_EOD, False, True)
    y, (dx,) = vjp(lambda x: ref.rope(x, float(theta), positions=positions), [x], dy)
    return ({"x": x, "dy": dy, "tokens": tokens}, {"y": y, "dx": dx},
            {"theta": theta, "offset": "0", "eod_id": str(DOC_EOD)})


def swiglu_case(g, N, F):
    gate, up, dy = g.normal(N, F, std=3.0), g.normal(N, F), g.normal(N, F)
    y, (dgate, dup) = vjp(ref.swiglu, [gate, up], dy)
    return {"gate": gate, "up": up, "dy": dy}, {"y": y, "dgate": dgate, "dup": dup}, {}


def embedding_case(g, V, C, B, T):
    ids = torch.randint(0, V, (B, T))
    flat = ids.view(-1)
    flat[1] = V - 1       # the last table row is used
    flat[-1] = flat[0]    # at least one id repeats (gradients must accumulate)
    table, dy = g.normal(V, C, std=0.05), g.normal(B, T, C)
    y, (dtable,) = vjp(lambda t: ref.embedding(ids, t), [table], dy)
    return {"ids": ids, "table": table, "dy": dy}, {"y": y, "dtable": dtable}, {}


def cross_entropy_case(g, N, V, ignore_index="-100"):
    logits = g.normal(N, V, std=2.0)
    targets = torch.randint(0, V, (N,))
    targets[1::3] = int(ignore_index)  # some rows ignored, never all (N >= 3)
    loss, (dlogits,) = vjp(lambda z: ref.cross_entropy(z, targets, int(ignore_index)),
                           [logits], torch.tensor(1.0, dtype=torch.float64))
    return ({"logits": logits, "targets": targets},
            {"loss": loss, "dlogits": dlogits},
            {"ignore_index": ignore_index})


def linear_case(g, M, K, N):
    x, w, dy = g.normal(M, K), g.normal(N, K, std=0.1), g.normal(M, N)
    y, (dx, dw) = vjp(ref.linear, [x, w], dy)
    return {"x": x, "w": w, "dy": dy}, {"y": y, "dx": dx, "dw": dw}, {}


# ---------------------------------------------------------- model cases

MODEL_SMALL = {"vocab_size": "101", "dim": "128", "n_layers": "2", "n_heads": "2",
               "n_kv_heads": "1", "ffn_dim": "200", "norm_eps": "1e-5",
               "rope_theta": "10000", "tie_embeddings": "false"}
MODEL_TIED = {"vocab_size": "64", "dim": "64", "n_layers": "1", "n_heads": "4",
              "n_kv_heads": "2", "ffn_dim": "96", "norm_eps": "1e-5",
              "rope_theta": "10000", "tie_embeddings": "true"}


# Byte-level documents as `llamatron data prepare` writes them (UTF-8 bytes, then EOS 256), packed
# back to back into windows of T + 1 tokens: real document boundaries of uneven lengths.
BYTE_EOS = 256
MODEL_BYTES = {"vocab_size": "257", "dim": "64", "n_layers": "2", "n_heads": "4",
               "n_kv_heads": "2", "ffn_dim": "96", "norm_eps": "1e-5",
               "rope_theta": "10000", "tie_embeddings": "false"}
TEXTS = ["The cat sat.", "A", "Packed documents end with an end-of-text token.", "", "Hi!",
         "Attention stays inside each document; positions restart.", "ok", "Zürich, 2 °C",
         "One more line of plain text to fill the second window.", "x", "The end."]


def packed_windows(B, T):
    stream = []
    for text in TEXTS:
        stream += list(text.encode("utf-8")) + [BYTE_EOS]
    assert len(stream) >= B * (T + 1)
    return torch.tensor(stream[: B * (T + 1)]).reshape(B, T + 1)


def model_docs_case(g, meta, B, T, switches):
    cfg = ref.LlamaConfig.from_meta(meta)
    params = model_params(g, cfg)
    tokens = packed_windows(B, T)
    mask, pos, loss_mask = (c == "1" for c in switches)
    live = leaves(params)
    loss, logits = ref.loss_and_logits(live, tokens, cfg, BYTE_EOS, mask, pos, loss_mask)
    grads = torch.autograd.grad(loss, list(live.values()))
    outputs = {"loss": loss.detach(), "logits": logits.detach()}
    outputs.update({"grad." + name: gr for name, gr in zip(live, grads)})
    meta = dict(meta, eod_id=str(BYTE_EOS), reset_attention_mask=str(mask).lower(),
                reset_position_ids=str(pos).lower(), eod_mask_loss=str(loss_mask).lower())
    return {**params, "tokens": tokens}, outputs, meta


def model_params(g, cfg):
    """HF name -> random weight: norms 1 + 0.1 N(0,1), everything else 0.05 N(0,1)."""
    return {name: g.norm_weight(*shape) if ref.is_norm_weight(name) else g.normal(*shape, std=0.05)
            for name, shape in ref.param_shapes(cfg).items()}


def leaves(params):
    return {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}


def model_case(g, meta, B, T):
    cfg = ref.LlamaConfig.from_meta(meta)
    params = model_params(g, cfg)
    tokens = torch.randint(0, cfg.vocab_size, (B, T + 1))
    live = leaves(params)
    loss, logits = ref.loss_and_logits(live, tokens, cfg)
    grads = torch.autograd.grad(loss, list(live.values()))
    outputs = {"loss": loss.detach(), "logits": logits.detach()}
    outputs.update({"grad." + name: gr for name, gr in zip(live, grads)})
    return {**params, "tokens": tokens}, outputs, dict(meta)


def adamw_case(g, meta, B, T, steps, lr, max_grad_norm,
               beta1="0.9", beta2="0.95", eps="1e-8", weight_decay="0.1"):
    cfg = ref.LlamaConfig.from_meta(meta)
    params = model_params(g, cfg)
    S = int(steps)
    tokens = torch.randint(0, cfg.vocab_size, (S, B, T + 1))
    live = leaves(params)
    groups = [
        {"params": [p for n, p in live.items() if not ref.is_norm_weight(n)],
         "weight_decay": float(weight_decay)},
        {"params": [p for n, p in live.items() if ref.is_norm_weight(n)],
         "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=float(lr), betas=(float(beta1), float(beta2)),
                            eps=float(eps))
    losses, grad_norms = [], []
    for s in range(S):
        opt.zero_grad(set_to_none=True)
        loss, _ = ref.loss_and_logits(live, tokens[s], cfg)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(live.values()), float(max_grad_norm))
        opt.step()
        losses.append(loss.item())
        grad_norms.append(norm.item())
    outputs = {"losses": torch.tensor(losses, dtype=torch.float64),
               "grad_norms": torch.tensor(grad_norms, dtype=torch.float64)}
    outputs.update({"final." + name: p.detach() for name, p in live.items()})
    meta = dict(meta, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                weight_decay=weight_decay, max_grad_norm=max_grad_norm, steps=steps)
    return {**params, "tokens": tokens}, outputs, meta


# ------------------------------------------------------------ case table
# (op, case name, builder, keyword arguments, precisions)

CASES = [
    ("rmsnorm", "n7c64", rmsnorm_case, dict(N=7, C=64), PRECISIONS),
    ("rmsnorm", "n33c130", rmsnorm_case, dict(N=33, C=130), PRECISIONS),
    ("rmsnorm", "n1c512", rmsnorm_case, dict(N=1, C=512), PRECISIONS),
    ("rmsnorm", "n64c1000", rmsnorm_case, dict(N=64, C=1000), PRECISIONS),
    ("rope", "t1d64", rope_case, dict(B=1, T=1, H=2, D=64, offset="0", theta="10000"), PRECISIONS),
    ("rope", "t17d64", rope_case, dict(B=2, T=17, H=3, D=64, offset="5", theta="10000"), PRECISIONS),
    ("rope", "t33d128", rope_case, dict(B=1, T=33, H=2, D=128, offset="0", theta="500000"), PRECISIONS),
]
CASES += [
    ("attention", f"t{T}h{H}kv{KV}d{D}", attention_case,
     dict(B=2 if T <= 64 else 1, T=T, H=H, KV=KV, D=D), PRECISIONS)
    for T in (1, 17, 64, 130) for (H, KV) in ((4, 4), (4, 2), (4, 1)) for D in (64, 128)
]
CASES += [
    ("attention", f"docs_{pat}_h{H}kv{KV}d{D}", attention_docs_case,
     dict(B=2, T=130, H=H, KV=KV, D=D, pattern=pat), PRECISIONS)
    for pat in DOC_PATTERNS for (H, KV) in ((4, 2), (2, 1)) for D in (64, 128)
]
CASES += [
    ("rope", f"docs_{pat}", rope_docs_case, dict(B=2, T=70, H=2, D=64, theta="10000", pattern=pat), PRECISIONS)
    for pat in ("len1", "tiny")
]
CASES += [  # every combination of reset_attention_mask, reset_position_ids, eod_mask_loss
    ("model", f"docs{m}{p}{l}", model_docs_case, dict(meta=MODEL_BYTES, B=2, T=70, switches=f"{m}{p}{l}"),
     PRECISIONS if f"{m}{p}{l}" == "111" else ("fp32",))
    for m in "01" for p in "01" for l in "01"
]
CASES += [
    ("swiglu", "n5f7", swiglu_case, dict(N=5, F=7), PRECISIONS),
    ("swiglu", "n40f200", swiglu_case, dict(N=40, F=200), PRECISIONS),
    ("swiglu", "n3f1408", swiglu_case, dict(N=3, F=1408), PRECISIONS),
    ("embedding", "v11c8", embedding_case, dict(V=11, C=8, B=2, T=5), PRECISIONS),
    ("embedding", "v97c64", embedding_case, dict(V=97, C=64, B=3, T=17), PRECISIONS),
    ("cross_entropy", "n5v7", cross_entropy_case, dict(N=5, V=7), PRECISIONS),
    ("cross_entropy", "n33v101", cross_entropy_case, dict(N=33, V=101), PRECISIONS),
    ("cross_entropy", "n17v1000", cross_entropy_case, dict(N=17, V=1000), PRECISIONS),
    ("linear", "m7k5n3", linear_case, dict(M=7, K=5, N=3), PRECISIONS),
    ("linear", "m33k64n130", linear_case, dict(M=33, K=64, N=130), PRECISIONS),
    ("linear", "m128k256n96", linear_case, dict(M=128, K=256, N=96), PRECISIONS),
    ("model", "small", model_case, dict(meta=MODEL_SMALL, B=2, T=17), PRECISIONS),
    ("model", "tied", model_case, dict(meta=MODEL_TIED, B=1, T=16), PRECISIONS),
    ("adamw", "steps1", adamw_case,
     dict(meta=MODEL_SMALL, B=2, T=17, steps="1", lr="1e-3", max_grad_norm="1.0"), ("fp32",)),
    ("adamw", "steps10", adamw_case,
     dict(meta=MODEL_SMALL, B=2, T=17, steps="10", lr="1e-3", max_grad_norm="1.0"), ("fp32",)),
]


# ---------------------------------------------------------------- output

def seed_for(name):
    """Fixed per-case seed: CRC-32 of "{op}_{case}" (same for fp32 and bf16,
    so a bf16 case holds the bf16-rounded values of the fp32 case's draws)."""
    return zlib.crc32(name.encode("ascii"))


def stored_input(name, t):
    if not t.is_floating_point():
        return t.to(torch.int32).numpy()
    a = t.detach().to(torch.float32)
    if not torch.equal(a.to(torch.float64), t.detach().to(torch.float64)):
        raise ValueError(f"input {name} is not exactly representable in float32")
    return a.numpy()


def stored_output(name, t):
    a = t.detach().to(torch.float64)
    if not torch.isfinite(a).all():
        raise ValueError(f"output {name} has non-finite values")
    return a.numpy()


def write_case(path, inputs, outputs, meta):
    clash = set(inputs) & set(outputs)
    if clash:
        raise ValueError(f"names used for both inputs and outputs: {sorted(clash)}")
    tensors = {n: stored_input(n, t) for n, t in inputs.items()}
    tensors.update({n: stored_output(n, t) for n, t in outputs.items()})
    st.save(str(path), tensors, meta)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    outdir = Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for op, case, build, kwargs, precisions in CASES:
        for prec in precisions:
            name = f"{op}_{case}_{prec}"
            try:
                torch.manual_seed(seed_for(f"{op}_{case}"))
                inputs, outputs, meta = build(Inputs(prec), **kwargs)
                path = outdir / f"{name}.safetensors"
                write_case(path, inputs, outputs, dict(meta, precision=prec))
                print(path, flush=True)
            except Exception:
                failures += 1
                traceback.print_exc()
                print(f"FAILED: {name}", file=sys.stderr, flush=True)
    if failures:
        print(f"{failures} case(s) failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
