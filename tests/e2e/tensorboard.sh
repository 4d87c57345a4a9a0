#!/usr/bin/env bash
# Around the training loop, as a user sees it under mpirun (dp 2): a batch-size ramp-up
# (train.rampup_batch_size) in the log, the step lines and the metrics JSONL, a run resumed in the
# middle of the ramp, and TensorBoard event files (logging.tensorboard_dir, rank 0) that the real
# `tensorboard` package (PyPI, in the tools venv) reads as exactly the JSONL's scalars, over both
# runs' files. A tensorboard_dir that cannot be made is one error line.
#
# Usage: tensorboard.sh PATH_TO_llamatron MPIEXEC WORKDIR      (CTest: tensorboard)
set -u
BIN=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
mpi_workdir "$3"

# Batches 4, 4, 8, 12, then 16 ([4, 4, 24] towards 16: +4 every 8 samples), over dp 2 x micro 2.
cat >"$W/base.yaml" <<'YAML'
model: {vocab_size: 128, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 96, max_seq_len: 32}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 2}
data: {source: synthetic, valid_fraction: 0}
train: {steps: 7, micro_batch_size: 2, seq_length: 32, global_batch_size: 16, rampup_batch_size: [4, 4, 24], threads: 1,
        eval_every: 3, eval_batches: 1}
logging: {progress: never, log_every: 1, cpu_peak_tflops: 1.0, gns: true}
YAML
run() {  # run NAME ARGS...: mpirun -np 2 train base.yaml ARGS (output in $W/NAME.out)
  local name=$1
  shift
  timeout 300 "$MPIEXEC" -np 2 --oversubscribe "$BIN" train "$W/base.yaml" --set logging.metrics_file="$W/metrics.jsonl" \
    --set logging.tensorboard_dir="$W/tb" --set checkpoint.dir="$W/ck" "$@" >"$W/$name.out" 2>&1
}

run first --set train.steps=3
check "dp 2 with a batch ramp-up trains 3 steps" "[[ $? == 0 ]]" "$(tail -3 "$W/first.out")"
check "the log states the ramp" "grep -qF 'batch ramp-up: 4 -> 16 sequences (+4 every 8 samples, over the first 24 samples): micro-batches per step 1 -> 4' '$W/first.out'" \
  "$(grep 'batch' "$W/first.out" | head -3)"
sleep 1  # the resumed run's event file is named by the second it starts in
run rest
check "resumed after step 3, it trains steps 4 to 7" "[[ $? == 0 ]] && grep -q 'step     4/7' '$W/rest.out' && ! grep -q 'step     3/7' '$W/rest.out'" \
  "$(tail -3 "$W/rest.out")"
batches=$(grep -o '\] step .*| batch [0-9]*' "$W/first.out" "$W/rest.out" | sed 's/.*batch //' | tr '\n' ' ')
check "step lines: batches 4 4 8 12 16 16 16" "[[ '$batches' == '4 4 8 12 16 16 16 ' ]]" "got: $batches"
check "metrics JSONL: global_batch_size 4 4 8 12 16 16 16, tokens counted per batch" \
  "/usr/bin/python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; b=[x[\"global_batch_size\"] for x in r]; t=[x[\"tokens\"] for x in r];
sys.exit(not (b==[4,4,8,12,16,16,16] and t==[32*sum(b[:i+1]) for i in range(7)]))' '$W/metrics.jsonl'" "$(head -c 600 "$W/metrics.jsonl")"
files=$(find "$W/tb" -name 'events.out.tfevents.*' | wc -l)
check "one event file per run in logging.tensorboard_dir (rank 0 only)" "[[ $files == 2 ]]" "$(ls -la "$W/tb")"
if PY=$(tools_venv "$W" tensorboard); then
  "$PY" "$HERE/../tools/check_tensorboard.py" "$W/tb" "$W/metrics.jsonl" loss lr grad_norm tokens_per_s mfu mem_mib valid_loss \
    valid_perplexity skipped_steps global_batch_size exposed_comm_ms gns >"$W/check.out" 2>&1
  check "tensorboard's EventAccumulator reads exactly the JSONL's scalars" "[[ $? == 0 ]]" "$(cat "$W/check.out")"
else
  fail "tensorboard from PyPI" "pip install failed: $(tail -3 "$W/pip.out" 2>/dev/null)"
fi

touch "$W/a_file"
run bad --set train.steps=1 --set logging.tensorboard_dir="$W/a_file/tb" --set checkpoint.dir="$W/ck_bad"
rc=$?
# Rank 0's own error (as for logging.metrics_file): "llamatron: error on rank 0: ...", the job aborted.
check "a tensorboard_dir under a file: one error line naming it, a failed job" \
  "[[ $rc != 0 ]] && [[ \$(grep -c '^llamatron: error' '$W/bad.out') == 1 ]] && grep -q 'logging.tensorboard_dir .*a_file/tb: cannot create it' '$W/bad.out'" \
  "rc $rc: $(grep -v '^\[' "$W/bad.out" | head -3)"
finish
