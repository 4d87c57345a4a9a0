#!/usr/bin/env bash
# `llamatron generate` with and without the KV cache: tokens/s at NEW new tokens (default 512),
# greedy, one prompt, on configs/tiny.yaml's model (3M parameters, fp32, max_seq_len raised to fit) with
# weights after one training step; the two outputs must be the same tokens. DEVICE=cuda runs it on
# the GPU (build/llamatron) or, with BIN=build/llamatron-emu, on the emulated device (the
# emulator's speed says nothing about a GPU's). A benchmark, not a test: the equality of the
# paths is tested by CTest generate (tests/e2e/generate.sh) and KvCache.* / CudaBackendEndToEnd.KvCache*.
#
# Usage: benchmarks/generate.sh [NEW (default 512)]      DEVICE=cpu|cuda, BIN=..., OMP_NUM_THREADS=N
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
new=${1:-512}
device=${DEVICE:-cpu}
bin=${BIN:-build/llamatron}
build/llamatron train configs/tiny.yaml --set train.steps=1 --set checkpoint.dir="$work/ck" --set logging.progress=never \
  --set logging.metrics_file= --set data.source=synthetic --set data.paths= --set data.valid_fraction=0 --set train.eval_every=0 \
  --set model.vocab_size=257 --set model.max_seq_len=$((new + 16)) --set train.precision=fp32 >"$work/train.out" 2>&1 || { tail -3 "$work/train.out"; exit 1; }
rate() {  # LABEL FLAGS...: tokens/s of one run (its stderr line), the ids in $work/LABEL.ids
  local label=$1
  shift
  "$bin" generate "$work/ck" --tokens 84,104,101,32,76 --max-new "$new" --temperature 0 --device "$device" --time "$@" \
    >"$work/$label.ids" 2>"$work/$label.err" || { cat "$work/$label.err"; exit 1; }
  sed -n 's/.*: \([0-9.]*\) tokens\/s.*/\1/p' "$work/$label.err"
}
cached=$(rate cached)
full=$(rate full --no-cache)
cmp -s "$work/cached.ids" "$work/full.ids" || { echo "generate.sh: the cached and the recomputing paths made different tokens" >&2; exit 1; }
echo "generate, $new new tokens, greedy, tiny model, $device ($(nproc) CPUs, OMP_NUM_THREADS=${OMP_NUM_THREADS:-all}):"
printf '  KV cache            %8.1f tokens/s\n  recomputing prefix  %8.1f tokens/s\n  ratio               %8.1fx\n' \
  "$cached" "$full" "$(echo "$cached / $full" | bc -l)"
