#!/usr/bin/env bash
# The step timeline (logging.trace_file) of a dp=2 run under mpirun: one file with both ranks and
# one file per rank ({rank}) that tests/tools/check_trace.py accepts (every field, a thread name per
# row, pids 0 and 1) and in which, on each rank, a DP collective runs while the backward computes
# (overlap on); tools/plot_trace.py draws it. The step line and metrics JSONL carry exposed comm.
#
# Usage: trace.sh PATH_TO_llamatron MPIEXEC WORKDIR      (CTest: step_trace)
set -u
BIN=$1 MPIEXEC=$2
rm -rf "$3" && mkdir -p "$3" || exit 2
W=$(cd "$3" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS=$HERE/../tools
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
PASSED=0 FAILED=0
source "$HERE/lib.sh"

cat >"$W/base.yaml" <<'YAML'
model: {vocab_size: 128, dim: 64, n_layers: 4, n_heads: 4, n_kv_heads: 2, ffn_dim: 96, max_seq_len: 32}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 0}
train: {steps: 3, micro_batch_size: 4, seq_length: 32, grad_accum_steps: 2, threads: 1}
parallel: {bucket_size_mb: 0.05}
logging: {progress: never, trace_steps: [2, 3]}
YAML

run() {  # run NAME ARGS...: mpirun -np 2 train base.yaml ARGS (output in $W/NAME.out)
  local name=$1
  shift
  timeout 300 "$MPIEXEC" -np 2 --oversubscribe "$BIN" train "$W/base.yaml" "$@" >"$W/$name.out" 2>&1
}

run one --set logging.trace_file="$W/trace.json" --set logging.metrics_file="$W/metrics.jsonl"
check "dp=2 run with a trace trains" "[[ $? == 0 ]]" "$(tail -3 "$W/one.out")"
check "one trace file with both ranks, comm under the backward" \
  "/usr/bin/python3 '$TOOLS/check_trace.py' '$W/trace.json' --ranks 2 --expect-overlap >'$W/check.out' 2>&1" "see $W/check.out"
check "the trace holds steps 2 and 3 only" \
  "/usr/bin/python3 -c 'import json,sys; s={e[\"args\"][\"step\"] for e in json.load(open(sys.argv[1]))[\"traceEvents\"] if e[\"ph\"]==\"X\"}; sys.exit(s!={2,3})' '$W/trace.json'"
check "plot_trace.py draws it" "/usr/bin/python3 '$HERE/../../tools/plot_trace.py' '$W/trace.json' --step 3 --out '$W/step.png' >/dev/null && [[ -s '$W/step.png' ]]"
check "the step line shows exposed comm" "grep -q 'exposed comm [0-9.]* ms' '$W/one.out'"
check "metrics JSONL carries exposed_comm_ms <= step_ms" \
  "/usr/bin/python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; sys.exit(not (len(r)==3 and all(0<=x[\"exposed_comm_ms\"]<=x[\"step_ms\"] for x in r)))' '$W/metrics.jsonl'"

run per_rank --set logging.trace_file="$W/trace_rank{rank}.json"
check "one trace file per rank" "[[ $? == 0 && -s '$W/trace_rank0.json' && -s '$W/trace_rank1.json' ]]" "$(tail -3 "$W/per_rank.out")"
check "the per-rank files validate together" \
  "/usr/bin/python3 '$TOOLS/check_trace.py' '$W/trace_rank0.json' '$W/trace_rank1.json' --ranks 2 --expect-overlap >'$W/check2.out' 2>&1" "see $W/check2.out"

# Overlap off: the same losses, bit for bit (the step lines' loss field).
run off --set parallel.overlap_grad_reduce=false --set parallel.overlap_param_gather=false
losses() { grep -o 'loss [0-9.]*' "$W/$1.out"; }
check "overlap off trains the same losses" "[[ -n \"\$(losses one)\" && \"\$(losses one)\" == \"\$(losses off)\" ]]" "$(losses one | tr '\n' ' ') vs $(losses off | tr '\n' ' ')"

run bad --set logging.trace_file="$W/no/such/dir/trace.json"
check "an unwritable trace file is one clear error" "[[ $? != 0 ]] && grep -q 'llamatron: error: logging.trace_file' '$W/bad.out'" "$(tail -2 "$W/bad.out")"
finish
