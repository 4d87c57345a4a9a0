#!/usr/bin/env bash
# Bad layouts under mpirun: each must end the whole job (no hang: a 60 s timeout), with a non-zero
# exit status, and exactly one "llamatron: error: ..." line (rank 0 speaks for every rank) naming
# the problem; then a valid 3D run (tp 2 x pp 2 x dp 2) must train.
#
# Usage: parallel_errors.sh PATH_TO_llamatron MPIEXEC WORKDIR      (CTest: parallel_errors)
set -u
BIN=$1 MPIEXEC=$2
rm -rf "$3" && mkdir -p "$3" || exit 2
W=$(cd "$3" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
source "$(dirname "$0")/lib.sh"

cat >"$W/base.yaml" <<'YAML'
model: {vocab_size: 100, dim: 64, n_layers: 4, n_heads: 4, n_kv_heads: 2, ffn_dim: 96, max_seq_len: 16}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 0}
train: {steps: 2, micro_batch_size: 2, seq_length: 16, threads: 1, precision: fp32}
logging: {log_every: 1}
YAML

# expect_layout_error NAME NP KEYWORD -- --set ...: mpirun -np NP llamatron train base.yaml ARGS.
# The cases are independent jobs that mostly wait on MPI's start-up: two run at a time, each with
# its own files; their verdicts are counted in order at the end (layout_verdicts).
CASES=0
layout_case() {
  local n=$1 name=$2 np=$3 keyword=$4
  shift 5
  local out=$W/out.$n err=$W/err.$n
  timeout 60 "$MPIEXEC" -np "$np" --oversubscribe "$BIN" train "$W/base.yaml" "$@" >"$out" 2>"$err"
  local rc=$? errors
  errors=$(grep -c '^llamatron: error: ' "$err")
  if (( rc == 124 )); then echo "FAIL|the job hung (killed after 60 s)"
  elif (( rc == 0 )); then echo "FAIL|exit status 0"
  elif (( errors != 1 )); then echo "FAIL|$errors 'llamatron: error:' lines, expected 1: $(head -c 400 "$err")"
  elif ! grep '^llamatron: error: ' "$err" | grep -qF -- "$keyword"; then echo "FAIL|the error does not mention '$keyword': $(grep '^llamatron: error: ' "$err")"
  elif grep -q 'internal error' "$err"; then echo "FAIL|an internal error: $(head -c 400 "$err")"
  elif [[ -n $(crash_sign "$err") ]]; then echo "FAIL|a rank crashed after the error: $(crash_sign "$err")"
  else echo "ok|"
  fi >"$W/verdict.$n"
  echo "$name" >"$W/name.$n"
}
expect_layout_error() {
  CASES=$((CASES + 1))
  layout_case "$CASES" "$@" &
  while (( $(jobs -rp | wc -l) >= 2 )); do wait -n; done
}
layout_verdicts() {
  wait
  local n verdict
  for (( n = 1; n <= CASES; ++n )); do
    verdict=$(cat "$W/verdict.$n" 2>/dev/null || echo "FAIL|no verdict")
    if [[ $verdict == ok\|* ]]; then pass "$(cat "$W/name.$n")"; else fail "$(cat "$W/name.$n" 2>/dev/null || echo "case $n")" "${verdict#FAIL|}"; fi
  done
}

#                   name                                   np keyword                                -- overrides
expect_layout_error "world != tp x pp x dp"                 3 "the world has 3 process(es)"          -- --set parallel.data_parallel=2
expect_layout_error "world not a multiple of tp x pp"       3 "not a multiple"                        -- --set parallel.tensor_parallel=2
expect_layout_error "n_heads not divisible by tp"           8 "model.n_heads (4) must be divisible"   -- --set parallel.tensor_parallel=8
expect_layout_error "KV heads neither split nor replicated" 2 "must divide one another"               -- --set model.n_heads=6 --set model.n_kv_heads=3 --set model.dim=96 --set parallel.tensor_parallel=2
expect_layout_error "n_layers not divisible by pp"          2 "model.n_layers (3) must be divisible"  -- --set model.n_layers=3 --set parallel.pipeline_parallel=2
expect_layout_error "explicit layer split not adding up"   2 "parallel.pipeline_layers must list 2"  -- --set parallel.pipeline_parallel=2 --set parallel.pipeline_layers=3,2
expect_layout_error "global batch not divisible by micro x dp" 2 "train.global_batch_size (3) must be divisible" -- --set train.global_batch_size=3
expect_layout_error "tied embeddings across pipeline stages" 2 "tie_embeddings"                       -- --set model.tie_embeddings=true --set parallel.pipeline_parallel=2
expect_layout_error "virtual pipeline without a pipeline"    2 "parallel.virtual_pipeline (2) needs parallel.pipeline_parallel > 1" -- --set parallel.virtual_pipeline=2
expect_layout_error "layers not divisible into pp x v chunks" 2 "model.n_layers (4) must be divisible by parallel.pipeline_parallel x parallel.virtual_pipeline (2 x 4 = 8" -- --set parallel.pipeline_parallel=2 --set parallel.virtual_pipeline=4
expect_layout_error "interleaved micro-batches not in groups of pp" 2 "train.grad_accum_steps (3) to be a multiple of parallel.pipeline_parallel (2)" -- --set parallel.pipeline_parallel=2 --set parallel.virtual_pipeline=2 --set train.grad_accum_steps=3
expect_layout_error "interleaved: a global batch of 1 micro-batch" 2 "a micro-batch count (train.grad_accum_steps, here 1) that is a multiple of parallel.pipeline_parallel (2)" -- --set parallel.pipeline_parallel=2 --set parallel.virtual_pipeline=2 --set train.global_batch_size=2
expect_layout_error "a ramp-up size not divisible by micro x dp" 2 "train.rampup_batch_size passes through a global batch of 2 sequences, which is not a multiple of train.micro_batch_size x data-parallel ranks (4)" -- --set train.global_batch_size=8 --set train.rampup_batch_size=2,2,6
expect_layout_error "interleaved: a ramp-up size not in groups of pp" 2 "passes through a global batch of 2 sequences, which is not 1 micro-batch(es) in groups of parallel.pipeline_parallel (2, interleaved)" -- --set parallel.pipeline_parallel=2 --set parallel.virtual_pipeline=2 --set train.global_batch_size=8 --set train.rampup_batch_size=2,2,6
expect_layout_error "sequence not divisible into tp chunks"  4 "train.seq_length (14) must be divisible by parallel.tensor_parallel (4) with parallel.sequence_parallel" -- --set parallel.tensor_parallel=4 --set parallel.sequence_parallel=true --set train.seq_length=14

layout_verdicts

# A valid 3D layout trains: 8 ranks, 4 micro-batches, every step logged once (by rank 0).
timeout 120 "$MPIEXEC" -np 8 --oversubscribe "$BIN" train "$W/base.yaml" --set parallel.tensor_parallel=2 \
  --set parallel.pipeline_parallel=2 --set train.global_batch_size=16 --set "checkpoint.dir=$W/ck3d" >"$W/out" 2>"$W/err"
rc=$?
steps=$(grep -c '\] step ' "$W/out")
if (( rc == 0 )) && (( steps == 2 )) && grep -q 'tensor_parallel 2 x pipeline_parallel 2 x data_parallel 2' "$W/out" &&
   grep -q '2 x 16 tokens x 4 micro-batch(es) x 2 data-parallel rank(s)' "$W/out"; then
  pass "tp 2 x pp 2 x dp 2 trains, rank 0 logs"
else
  fail "tp 2 x pp 2 x dp 2 trains, rank 0 logs" "exit $rc, $steps step lines; $(head -c 600 "$W/out") $(head -c 300 "$W/err")"
fi
# Its checkpoint (a global batch over dp 2 in its resolved config) loads in one process for generate.
if out=$("$BIN" generate "$W/ck3d" --tokens 1,2,3 --max-new 4 --temperature 0 2>&1) && [ "$(echo "$out" | tr ',' '\n' | wc -l)" -eq 4 ]; then
  pass "generate loads the tp 2 x pp 2 x dp 2 checkpoint in one process"
else
  fail "generate loads the tp 2 x pp 2 x dp 2 checkpoint in one process" "$out"
fi

# A rank killed mid-run (kill -9): the job ends, with an error, in bounded time (no survivor waits
# forever in a collective: mpirun tears the job down).
"$MPIEXEC" -np 2 --oversubscribe "$BIN" train "$W/base.yaml" --set train.steps=100000 >"$W/out" 2>"$W/err" &
job=$!
for _ in $(seq 600); do grep -q '\] step ' "$W/out" && break; sleep 0.1; done
victim=$(pgrep -P "$job" | head -1)
start=$(date +%s)
kill -9 "$victim" 2>/dev/null
# The deadline: its sleep must not hold this script's output open after the job ends (CTest
# waits for the pipe to close: a forgotten sleep 60 cost every run of this test a minute).
( sleep 60; kill -9 "$job" 2>/dev/null ) >/dev/null 2>&1 &
watchdog=$!
wait "$job"
rc=$?
pkill -P "$watchdog" sleep 2>/dev/null
kill "$watchdog" 2>/dev/null
elapsed=$(( $(date +%s) - start ))
if [ -n "$victim" ] && (( rc != 0 )) && (( elapsed < 60 )) && grep -qi "signal 9\|killed" "$W/err"; then
  pass "a rank killed mid-run ends the job with an error in ${elapsed}s"
else
  fail "a rank killed mid-run" "victim '$victim', exit $rc after ${elapsed}s: $(tail -c 400 "$W/err")"
fi

echo "$PASSED passed, $FAILED failed"
(( FAILED == 0 ))
