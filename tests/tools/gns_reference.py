#!/usr/bin/python3
"""The gradient noise scale of one step, computed directly from per-sample gradients (PyTorch
autograd, float64): the independent side of tests/e2e/noise_scale.sh.

Takes a Hugging Face export of the weights the step starts from, the llm.c shard the run trains on
(data.shuffle false: sample s is window s, tokens [s*T, s*T + T + 1)), and the step's layout. Each
sample's gradient g_i of its own mean loss; each DP rank's small-batch gradient is the mean of its
samples' (rank r of micro-batch m holds samples first + m*G + r*B .. + B - 1, G = B * dp); the
global gradient the mean of all. Prints one JSON object: small_sq (the mean over ranks of
|G_rank|^2), big_sq (|G_global|^2), b_small, b_big and McCandlish et al.'s B_simple from them.

usage: gns_reference.py HF_DIR SHARD --seq T --micro B --accum M --dp D --first S
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import llama_ref as ref  # noqa: E402
import st  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("hf_dir")
    p.add_argument("shard")
    for name in ("seq", "micro", "accum", "dp", "first"):
        p.add_argument("--" + name, type=int, required=True)
    a = p.parse_args()
    hf = json.load(open(os.path.join(a.hf_dir, "config.json")))
    cfg = ref.LlamaConfig(vocab_size=hf["vocab_size"], dim=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
                          n_heads=hf["num_attention_heads"], n_kv_heads=hf["num_key_value_heads"],
                          ffn_dim=hf["intermediate_size"], norm_eps=hf["rms_norm_eps"], rope_theta=hf["rope_theta"],
                          tie_embeddings=hf.get("tie_word_embeddings", False))
    tensors, _ = st.load(os.path.join(a.hf_dir, "model.safetensors"))
    params = {k: torch.tensor(np.asarray(v), dtype=torch.float64, requires_grad=True) for k, v in tensors.items()}
    raw = np.fromfile(a.shard, dtype="<i4", count=256)
    assert raw[0] == 20240520 and raw[1] == 1, "not an llm.c uint16 shard"
    tokens = np.fromfile(a.shard, dtype="<u2", offset=1024).astype(np.int64)
    T, B, M, D = a.seq, a.micro, a.accum, a.dp
    G = B * D

    def sample(s):
        return torch.tensor(tokens[s * T: s * T + T + 1]).reshape(1, T + 1)

    def grad(s):  # the gradient of sample s's own mean loss, flattened
        loss, _ = ref.loss_and_logits(params, sample(s), cfg)
        g = torch.autograd.grad(loss, list(params.values()))
        return torch.cat([x.reshape(-1) for x in g])

    per_rank = []
    for r in range(D):
        samples = [a.first + m * G + r * B + b for m in range(M) for b in range(B)]
        per_rank.append(torch.stack([grad(s) for s in samples]).mean(0))
    big = torch.stack(per_rank).mean(0)  # every rank has M * B samples of T targets: the mean of means
    small_sq = float(torch.stack([(g * g).sum() for g in per_rank]).mean())
    big_sq = float((big * big).sum())
    b_small, b_big = M * B, M * G
    grad_sq = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
    trace = (small_sq - big_sq) / (1 / b_small - 1 / b_big)
    print(json.dumps({"small_sq": small_sq, "big_sq": big_sq, "b_small": b_small, "b_big": b_big,
                      "grad_sq": grad_sq, "trace": trace, "b_simple": trace / grad_sq}))


if __name__ == "__main__":
    main()
