#!/usr/bin/env python3
"""Check a llamatron Hugging Face export against the real transformers LlamaForCausalLM.

Usage: compare_hf_logits.py EXPORT_DIR LOGITS_FILE TOKENS
  EXPORT_DIR   config.json + model.safetensors written by `llamatron export-hf`
  LOGITS_FILE  safetensors file with one fp32 tensor "logits" [T, vocab] from `llamatron logits`
  TOKENS       the T token ids, comma-separated (the ones LOGITS_FILE was computed for)

Prints the max |diff| and exits 0 when they agree; otherwise prints one "FAIL: reason" line and exits 1.
Needs torch, transformers and safetensors (tests/checkpoint/hf_transformers.sh makes that venv).
"""
import json
import os
import sys

# Everything is local: never let transformers reach for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Keys the export must write itself: transformers has a default for each of them, and a default
# that differs from llamatron's (rms_norm_eps 1e-6 vs 1e-5, num_key_value_heads = num_attention_heads)
# would load without complaint and give subtly different logits.
REQUIRED_KEYS = ["architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size",
                 "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "rms_norm_eps",
                 "rope_theta", "max_position_embeddings", "tie_word_embeddings", "torch_dtype"]


def fail(reason):
    print(f"FAIL: {reason}")
    sys.exit(1)


def check_config(export_dir):
    path = os.path.join(export_dir, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        fail(f"config.json lacks {', '.join(missing)}")
    if cfg["architectures"] != ["LlamaForCausalLM"] or cfg["model_type"] != "llama":
        fail(f"config.json is not a plain LLaMA: architectures={cfg['architectures']} model_type={cfg['model_type']}")
    if cfg.get("rope_scaling") is not None:  # llamatron has plain RoPE only
        fail(f"config.json has rope_scaling={cfg['rope_scaling']}; llamatron exports plain RoPE")
    return cfg


def main():
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    export_dir, logits_file = sys.argv[1], sys.argv[2]
    try:
        tokens = [int(t) for t in sys.argv[3].split(",")]
    except ValueError:
        fail(f"TOKENS must be comma-separated integers, got '{sys.argv[3]}'")

    cfg = check_config(export_dir)
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    from transformers import LlamaForCausalLM

    # A tied export carries no lm_head.weight; one that did would be loaded into the shared tensor
    # and overwrite the embedding, whichever came last.
    weights = os.path.join(export_dir, "model.safetensors")
    try:
        with safe_open(weights, framework="pt") as f:
            names = set(f.keys())
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same failure
        fail(f"cannot read {weights}: {e}")
    if cfg["tie_word_embeddings"] and "lm_head.weight" in names:
        fail("tie_word_embeddings is true but model.safetensors has lm_head.weight")

    try:
        model, info = LlamaForCausalLM.from_pretrained(export_dir, torch_dtype=torch.float32, output_loading_info=True)
    except Exception as e:  # noqa: BLE001 - e.g. a tensor whose shape disagrees with config.json
        fail(f"transformers cannot load {export_dir}: {' '.join(str(e).split())[:300]}")
    # transformers initialises missing weights randomly with only a warning: make that an error.
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(kind):
            fail(f"transformers reports {kind}: {sorted(map(str, info[kind]))[:6]}")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        fail("model did not load in float32")
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if tied != bool(cfg["tie_word_embeddings"]):
        fail(f"lm_head tied={tied} but config says tie_word_embeddings={cfg['tie_word_embeddings']}")
    model.eval()

    if any(t < 0 or t >= cfg["vocab_size"] for t in tokens):
        fail(f"a token is outside [0, {cfg['vocab_size']})")
    with torch.no_grad():
        ref = model(torch.tensor([tokens], dtype=torch.long)).logits[0].float()

    try:
        got = load_file(logits_file).get("logits")
    except Exception as e:  # noqa: BLE001
        fail(f"cannot read {logits_file}: {e}")
    if got is None:
        fail(f"{logits_file} has no tensor named 'logits'")
    if got.dtype != torch.float32 or tuple(got.shape) != tuple(ref.shape):
        fail(f"logits are {got.dtype} {list(got.shape)}, expected torch.float32 {list(ref.shape)}")
    if not torch.isfinite(got).all():
        fail("llamatron's logits are not all finite")

    # Both sides compute in fp32 but sum in different orders (blocked matmuls, fused vs separate
    # kernels), so they agree to a few ulps of the largest values, not bit for bit; 1e-4 relative is
    # ~1000 ulps of headroom, yet a swapped RoPE half, head order or weight is far above it.
    diff = (got - ref).abs().max().item()
    scale = ref.abs().max().item()
    tol = 1e-4 * scale + 1e-5
    if diff > tol:
        row = int((got - ref).abs().amax(dim=1).argmax())
        fail(f"max |diff| {diff:.3e} > tolerance {tol:.3e} (max |ref| {scale:.3e}); worst at position {row}")
    print(f"ok: {len(tokens)} tokens, vocab {ref.shape[1]}, tied={tied}: max |diff| {diff:.3e} <= {tol:.3e} "
          f"(max |ref| {scale:.3e})")


if __name__ == "__main__":
    main()
