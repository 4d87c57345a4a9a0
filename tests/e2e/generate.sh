#!/usr/bin/env bash
# `llamatron generate` with its KV cache against the path that re-runs the whole prefix for every
# token (--no-cache), on a byte-level model trained in fp32 (so that the two paths' logits differ by
# summation order only and greedy picks cannot tie differently): the same text for a batch of
# prompts, greedy and sampled; a prompt alone gives its line of the batch; --eos stops a sequence;
# model.max_seq_len bounds it; --device cuda runs the cache on the emulated device (llamatron-emu;
# its logits against the CPU's: CudaBackendEndToEnd.KvCacheLogitsEqualTheFullForward).
#
# Usage: generate.sh PATH_TO_llamatron PATH_TO_llamatron-emu|"" WORKDIR      (CTest: generate)
set -u
BIN=$1 EMU=$2
rm -rf "$3" && mkdir -p "$3" || exit 2
W=$(cd "$3" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
export OMP_NUM_THREADS=2

cat >"$W/model.yaml" <<YAML
model: {vocab_size: 257, dim: 128, n_layers: 2, n_heads: 2, n_kv_heads: 1, ffn_dim: 160, max_seq_len: 96}  # head_dim 64: the CUDA kernels take it
optimizer: {lr: 3.0e-3}
schedule: {warmup_steps: 5}
data: {source: synthetic}
train: {steps: 40, micro_batch_size: 8, seq_length: 64, precision: fp32}
logging: {progress: never, log_every: 40}
checkpoint: {dir: "$W/ck"}
YAML
"$BIN" train "$W/model.yaml" >"$W/train.out" 2>&1
check "an fp32 byte-level model trains" "[[ $? == 0 ]]" "$(tail -3 "$W/train.out")"

gen() {  # NAME ARGS...: llamatron generate CKPT ARGS, stdout in $W/NAME.out
  local name=$1
  shift
  "$BIN" generate "$W/ck" "$@" >"$W/$name.out" 2>"$W/$name.err"
}
prompts=(--prompt "The License" --prompt "x" --prompt "Copyright (C) 2026 the authors of")
gen cached "${prompts[@]}" --max-new 60 --temperature 0
gen full "${prompts[@]}" --max-new 60 --temperature 0 --no-cache
check "greedy: a batch of 3 prompts, the cache's text equals the recomputing path's" \
  "[[ -s '$W/cached.out' ]] && [[ \$(wc -l <'$W/cached.out') == 3 ]] && cmp -s '$W/cached.out' '$W/full.out'" \
  "$(diff "$W/cached.out" "$W/full.out" | head -5; cat "$W/cached.err")"
gen cached_s "${prompts[@]}" --max-new 60 --temperature 0.9 --top-k 30 --seed 4
gen full_s "${prompts[@]}" --max-new 60 --temperature 0.9 --top-k 30 --seed 4 --no-cache
check "sampled (temperature 0.9, top-k 30): the same text on both paths" "cmp -s '$W/cached_s.out' '$W/full_s.out'" \
  "$(diff "$W/cached_s.out" "$W/full_s.out" | head -5)"
gen alone --prompt "x" --max-new 60 --temperature 0
check "a prompt alone gives its line of the batch" "[[ \"\$(cat '$W/alone.out')\" == \"\$(sed -n 2p '$W/cached.out')\" ]]" \
  "alone: $(cat "$W/alone.out") / batch: $(sed -n 2p "$W/cached.out")"

# --tokens prints ids; --eos E stops before the first E.
gen ids --tokens 84,104,101 --max-new 20 --temperature 0
IFS=, read -r -a ids <"$W/ids.out"
first=${ids[4]:-0}
k=0
while [[ ${ids[$k]} != "$first" ]]; do k=$((k + 1)); done  # the first occurrence of ids[4]
want=$(IFS=,; echo "${ids[*]:0:$k}")
gen eos --tokens 84,104,101 --max-new 20 --temperature 0 --eos "$first"
check "--eos stops each sequence before that token (the cache and --no-cache alike)" \
  "[[ \${#ids[@]} == 20 ]] && [[ \"\$(cat '$W/eos.out')\" == '$want' ]] && gen eos_full --tokens 84,104,101 --max-new 20 --temperature 0 --eos $first --no-cache && cmp -s '$W/eos.out' '$W/eos_full.out'" \
  "ids $(cat "$W/ids.out"), eos $first: $(cat "$W/eos.out")"
# max_seq_len 96: a 93-token prompt has room for 3 new tokens.
long=$(seq -s, 1 93)
gen long --tokens "$long" --max-new 50 --temperature 0
gen long_full --tokens "$long" --max-new 50 --temperature 0 --no-cache
check "model.max_seq_len bounds the sequence: 93 + 3 tokens" \
  "[[ \$(tr ',' '\n' <'$W/long.out' | grep -c .) == 3 ]] && cmp -s '$W/long.out' '$W/long_full.out'" "$(cat "$W/long.out" "$W/long.err")"
gen bad --tokens 1,2 --eos 257
check "--eos outside the vocabulary: one error line" "[[ \$(grep -c '^llamatron: error: --eos 257 is not a token id' '$W/bad.err') == 1 ]]" "$(cat "$W/bad.err")"

if [[ -n $EMU ]]; then
  "$EMU" generate "$W/ck" "${prompts[@]}" --max-new 20 --temperature 0 --device cuda --time >"$W/emu.out" 2>"$W/emu.err"
  check "--device cuda (emulated): the KV cache on the device generates 3 x 20 tokens" \
    "[[ $? == 0 ]] && [[ \$(wc -l <'$W/emu.out') == 3 ]] && grep -q '60 new tokens .*(KV cache, cuda)' '$W/emu.err'" "$(cat "$W/emu.out" "$W/emu.err")"
fi
finish
