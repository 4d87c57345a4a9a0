#!/usr/bin/env bash
# llamatron's Hugging Face export, read by the real `transformers`: train a tiny LLaMA for 3 fp32
# steps, `export-hf` it, and check that LlamaForCausalLM's logits on the export match
# `llamatron logits` on the checkpoint (compare_hf_logits.py), untied and tied.
# transformers runs on Debian's python3-torch (1.13), through a venv that sees the system packages
# (WORKDIR/../hf-venv, made once). A failed install fails the test: it never passes without comparing.
#
# Usage: hf_transformers.sh PATH_TO_llamatron WORKDIR
set -u
BIN=$1
rm -rf "$2" && mkdir -p "$2" || exit 2
W=$(cd "$2" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1: $2"; }
summary() { echo "$PASSED passed, $FAILED failed"; (( FAILED == 0 )); exit; }

# ---- the venv: transformers 4.49.0 is the newest release whose LLaMA imports with torch 1.13 -----
# (4.50+ import torch.distributed.tensor, new in torch 2.x; 4.53+ refuse torch < 2).
VENV=$W/../hf-venv
PIN=(transformers==4.49.0 safetensors==0.8.0)
have_hf() { "$VENV/bin/python" -c "import torch, safetensors, transformers; assert transformers.__version__ == '4.49.0'" 2>/dev/null; }
if ! have_hf; then
  echo "installing ${PIN[*]} into $VENV (about 25 s)"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV" >"$W/pip.out" 2>&1 &&
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install -q "${PIN[@]}" >>"$W/pip.out" 2>&1
fi
if ! have_hf; then
  fail "Hugging Face transformers venv" "cannot install ${PIN[*]} over /usr/bin/python3's torch (needs python3-torch, python3-venv and PyPI): $(tail -3 "$W/pip.out" 2>/dev/null | tr '\n' ' ')"
  echo "*** NOT COMPARED: without transformers this test cannot check the export, so it fails ***"
  summary
fi

# ---- one case: train, export, logits, compare ----------------------------------------------------
cat >"$W/tiny.yaml" <<'YAML'
model: {vocab_size: 250, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 96, max_seq_len: 64, tie_embeddings: false}
optimizer: {lr: 1.0e-2}
schedule: {warmup_steps: 0}
data: {source: synthetic}
train: {steps: 3, micro_batch_size: 2, seq_length: 32, threads: 2, precision: fp32}
YAML
# 20 positions; ids 0 and 249 are the vocabulary's edges.
TOKENS=3,17,42,249,0,1,128,77,200,5,9,64,31,150,99,12,248,8,63,111

run_case() {  # NAME TIE
  local name=$1 d=$W/$1
  mkdir -p "$d"
  if ! "$BIN" train "$W/tiny.yaml" --set "model.tie_embeddings=$2" --set "checkpoint.dir=$d/ckpt" >"$d/train.out" 2>&1; then
    fail "$name: train" "$(tail -3 "$d/train.out" | tr '\n' ' ')"; return
  fi
  local ckpt
  ckpt=$d/ckpt/$(cat "$d/ckpt/latest" 2>/dev/null)
  if [ ! -f "$d/ckpt/latest" ] || [ ! -d "$ckpt" ]; then
    fail "$name: checkpoint" "no $d/ckpt/latest naming a step directory"; return
  fi
  if ! "$BIN" export-hf "$ckpt" "$d/hf" --dtype fp32 >"$d/export.out" 2>&1; then
    fail "$name: export-hf" "$(tail -3 "$d/export.out" | tr '\n' ' ')"; return
  fi
  if ! "$BIN" logits "$ckpt" --tokens "$TOKENS" --out "$d/logits.safetensors" >"$d/logits.out" 2>&1; then
    fail "$name: logits" "$(tail -3 "$d/logits.out" | tr '\n' ' ')"; return
  fi
  if "$VENV/bin/python" "$HERE/compare_hf_logits.py" "$d/hf" "$d/logits.safetensors" "$TOKENS" >"$d/compare.out" 2>&1; then
    pass "$name: transformers' logits match llamatron's ($(tail -1 "$d/compare.out"))"
  else
    fail "$name: transformers vs llamatron" "$(grep -m1 '^FAIL:' "$d/compare.out" || tail -3 "$d/compare.out" | tr '\n' ' ')"
  fi
}
run_case untied false
run_case tied true
summary
