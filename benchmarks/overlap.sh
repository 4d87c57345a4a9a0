#!/usr/bin/env bash
# Communication/computation overlap across two simulated nodes (scripts/sim_hosts.sh: network
# namespaces on this machine, links shaped by tbf; needs root). For dp=2 (one rank per node) and
# tp2 x dp2 (the TP pair inside a node, DP across the link), at each link speed and two compute
# sizes (the tests/e2e/tiny_synthetic.yaml model with LAYERS layers, at micro-batch MB and 4 x MB;
# with its 2 layers, half of the gradients are final only at the end of the backward and half of
# the parameters are needed before the first layer, so at most ~40% of the traffic could hide;
# with 8, one layer's bucket and gather are the tail: 1/8 of each), it runs a compute
# run, overlap off and overlap on back to back (the order reversed every other repetition) and
# prints per (link, size):
#   compute   an off run on unshaped links (the same ranks on the same nodes) next to the row's
#             runs, less its exposed comm where the binary reports it (on a busy 2-core machine
#             that is tens of ms)
#   comm      step off - compute: what the link costs when nothing hides it
#   wire      rank 0's DP bytes per step (log_comm) x ranks per node, at the tbf rate: the floor
#   step off / step on, exposed off / on (the metrics' exposed_comm_ms, where the binary writes it)
#   hidden    1 - exposed_on / exposed_off, or 1 - (step_on - compute) / (step_off - compute)
#   on/max    step_on / max(compute, comm): 1.0 is perfect overlap; the target is <= 1.25
# Step times are medians over steps 2..STEPS (step 1 is warm-up) of rank 0's metrics file, then the
# median over REPEATS. It is a benchmark, not a test: it prints figures and fails only when a run
# fails. Until the binary has parallel.overlap_grad_reduce the "on" runs are the "off" runs again,
# labelled so (the harness still runs end to end). On a 2-core machine tp2 x dp2 puts 4 ranks on 2
# cores, and other work on the machine moves the figures: compare off and on of one row.
#
#   benchmarks/overlap.sh                                  # about 6 minutes on 2 cores
#   REPEATS=3 RATES="25mbit 100mbit" LAYOUTS=dp2 benchmarks/overlap.sh
# Environment: REPEATS (2), STEPS (6), RATES ("100mbit 200mbit 400mbit 800mbit"), LAYERS (8), MICRO_BATCH (16),
# LAYOUTS ("dp2 tp2dp2"), BUCKET_MB (passed as parallel.bucket_size_mb when set), MPIRUN_ARGS
# (extra mpirun arguments, e.g. Open MPI coll_tuned choices), SETS (config overrides for every run
# and the planner, e.g. SETS="parallel.grad_reduce_dtype=bf16"), LLAMATRON_BIN (build/llamatron; it is
# copied at start, so a rebuild during the benchmark does not mix binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
REPEATS=${REPEATS:-2} STEPS=${STEPS:-6} RATES=${RATES:-"100mbit 200mbit 400mbit 800mbit"} LAYERS=${LAYERS:-8}
MICRO_BATCH=${MICRO_BATCH:-16} LAYOUTS=${LAYOUTS:-"dp2 tp2dp2"}
bin=$(realpath -m "${LLAMATRON_BIN:-build/llamatron}")
cfg=$PWD/tests/e2e/tiny_synthetic.yaml
[[ -x $bin ]] || { echo "overlap.sh: $bin not found: build first (scripts/build.sh)" >&2; exit 1; }
[[ $LAYERS =~ ^[1-9][0-9]*$ ]] || { echo "overlap.sh: LAYERS must be a positive integer" >&2; exit 1; }
((STEPS >= 2 && REPEATS >= 1)) || { echo "overlap.sh: STEPS must be >= 2 and REPEATS >= 1" >&2; exit 1; }
for layout in $LAYOUTS; do
  [[ $layout == dp2 || $layout == tp2dp2 ]] || { echo "overlap.sh: unknown layout '$layout' (dp2, tp2dp2)" >&2; exit 1; }
done
# shellcheck source=scripts/sim_hosts.sh
. scripts/sim_hosts.sh

work=$(mktemp -d /tmp/lt-overlap.XXXXXX)
trap 'rm -rf "$work"' EXIT  # sim_hosts_up chains its teardown in front of this
cp "$bin" "$work/llamatron"
bin_time=$(date -r "$bin" '+%F %T')  # of the copy that runs
cd "$work"  # the ranks' working directory: nothing of theirs lands in the tree
started=$SECONDS

# ---- which overlap switches this binary has ------------------------------------------------------
# A key the binary does not know is a one-line "unknown config key" error; any other outcome of a
# 1-step single-process run counts as known (the two-node runs will say if it is refused there).
has_key() {
  local err
  err=$("$work/llamatron" train "$cfg" --set train.steps=1 --set train.threads=1 --set logging.progress=never \
    --set "$1" 2>&1 >/dev/null) && return 0
  [[ $err != *"unknown config key '${1%%=*}'"* ]]
}
has_key parallel.overlap_grad_reduce=true && have_grad=1 || have_grad=0
has_key parallel.overlap_param_gather=true && have_param=1 || have_param=0
has_key parallel.bucket_size_mb=0 && have_bucket=1 || have_bucket=0
switches_on=() switches_off=() extra_sets=()
for kv in ${SETS:-}; do extra_sets+=(--set "$kv"); done
if ((have_grad)); then
  switches_on+=(--set parallel.overlap_grad_reduce=true) switches_off+=(--set parallel.overlap_grad_reduce=false)
  mode_note="on = parallel.overlap_grad_reduce=true"
  if ((have_param)); then
    switches_on+=(--set parallel.overlap_param_gather=true) switches_off+=(--set parallel.overlap_param_gather=false)
    mode_note+=" + overlap_param_gather=true"
  fi
  if [[ -n ${BUCKET_MB:-} ]]; then
    ((have_bucket)) || { echo "overlap.sh: BUCKET_MB set but the binary has no parallel.bucket_size_mb" >&2; exit 1; }
    switches_on+=(--set parallel.bucket_size_mb="$BUCKET_MB") switches_off+=(--set parallel.bucket_size_mb="$BUCKET_MB")
    mode_note+=", bucket_size_mb=$BUCKET_MB"
  fi
else
  mode_note="FALLBACK: this binary has no parallel.overlap_grad_reduce; 'on' runs are the 'off' runs again (harness check only)"
fi

# With a GPU on each simulated host (nvidia-smi answers), the runs train on it: NCCL over the same
# shaped links. Without one, the CPU backend over Open MPI; no GPU figure is printed then.
# NCCL takes the hosts' hostnames as different machines; it is kept on their shaped eth0 links.
device=() nccl_env=()
if nvidia-smi >/dev/null 2>&1; then
  device=(--set train.device=cuda) nccl_env=(-x NCCL_SOCKET_IFNAME=eth0 -x NCCL_P2P_DISABLE=1 -x NCCL_SHM_DISABLE=1)
fi

# ---- the planner's prediction ------------------------------------------------------------------
# `llamatron plan` for the same layout, given this CPU's measured rate (the model FLOPs of a rank's
# step over its measured compute time; --gemm-efficiency 1) and the shaped link per rank: its step
# time in ms with overlap (docs/planner.md, "Overlap").
planner_prediction() {  # LAYOUT MICRO_BATCH RATE COMPUTE_MS
  local layout=$1 mb=$2 rate=$3 compute=$4 gpus=2 shape=1,1,2 per_node=1
  [[ $layout == dp2 ]] || gpus=4 shape=2,1,2 per_node=2
  [[ -n $compute ]] || return 0
  awk -v mb="$mb" -v c="$compute" -v r="$rate" -v per="$per_node" -v tp="${shape%%,*}" -v L="$LAYERS" 'BEGIN {
      C = 128; T = 64                                            # tests/e2e/tiny_synthetic.yaml:
      P = L * 184576 + 65664   # per layer 4 attention + 3 MLP matrices + 2 norms; embedding, head, norm
      flops = mb * T * (6 * P + 12 * L * C * T) / tp             # one rank of the layout, one step
      bits = r + 0; u = tolower(r); sub(/^[0-9.]+/, "", u)
      bits *= (u == "gbit") ? 1e9 : (u == "kbit") ? 1e3 : (u == "bit") ? 1 : 1e6
      printf "%.6g %.6g\n", flops / (c / 1e3) / 1e12, bits / 8 / 1e9 / per }' | {
    read -r tflops gbs
    "$bin" plan "$root/tests/e2e/tiny_synthetic.yaml" --set train.micro_batch_size="$mb" --set model.n_layers="$LAYERS" --gpus "$gpus" --layout "$shape" \
      --tflops "$tflops" --gemm-efficiency 1 --network-gbps "$gbs" --gpus-per-node "$per_node" "${switches_on[@]}" "${extra_sets[@]}" 2>/dev/null |
      awk '!done && $1 == 1 && $2 ~ /^[0-9]+$/ { printf "%.1f\n", $25 * 1000; done = 1 }'
  }
}

# ---- runs ------------------------------------------------------------------------------------------
# median_field FILE FIELD: the median of FIELD over the steps > 1 of a metrics JSONL (empty: none).
median_field() {
  awk -v f="$2" 'match($0, /"step":[0-9]+/) && substr($0, RSTART + 7, RLENGTH - 7) + 0 > 1 {
      if (match($0, "\"" f "\":[-0-9.eE+]+")) print substr($0, RSTART + length(f) + 3, RLENGTH - length(f) - 3) }' "$1" |
    median
}
median() {  # numbers on stdin, one a line -> their median (nothing for none)
  sort -g | awk '{ a[NR] = $1 } END { if (NR) printf "%.3f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

declare -A results  # "what|layout|mb|rate|mode" -> values over repeats, space-separated
nruns=0
total_runs=0
for layout in $LAYOUTS; do total_runs=$((total_runs + 2 * REPEATS * 3 * $(wc -w <<<"$RATES"))); done

# run_once LAYOUT MB RATE MODE: one training run (MODE off, on, or compute: off on unshaped links,
# kept under RATE's row); appends its step, exposed comm and wire bytes.
run_once() {
  local layout=$1 mb=$2 rate=$3 mode=$4 tp=1 np=2 m log step exposed wire_mb
  [[ $layout == tp2dp2 ]] && tp=2 np=4
  nruns=$((nruns + 1))
  m=$work/run$nruns.jsonl log=$work/run$nruns.log
  local sw=("${switches_off[@]}" "${device[@]}")
  [[ $mode == on ]] && sw=("${switches_on[@]}" "${device[@]}")
  if [[ $mode == compute ]]; then sim_hosts_set_rate off; else sim_hosts_set_rate "$rate"; fi
  # Not in a subshell: bash would hold a TERM until the subshell ended, and the teardown with it.
  # shellcheck disable=SC2086  # MPIRUN_ARGS: words on purpose
  if ! sim_hosts_mpirun --timeout 600 -np "$np" --map-by "ppr:$tp:node" --bind-to none -x OMP_NUM_THREADS=1 "${nccl_env[@]}" \
    ${MPIRUN_ARGS:-} "$work/llamatron" train "$cfg" --set model.n_layers="$LAYERS" --set parallel.tensor_parallel="$tp" --set parallel.data_parallel=2 \
    --set train.steps="$STEPS" --set train.threads=1 --set train.micro_batch_size="$mb" --set logging.log_every=1 \
    --set logging.log_comm=true --set logging.progress=never --set logging.metrics_file="$m" "${sw[@]}" "${extra_sets[@]}" >"$log" 2>&1; then
    echo "overlap.sh: run failed ($layout, micro-batch $mb, row $rate, $mode run); the end of its output:" >&2
    tail -15 "$log" >&2
    exit 1
  fi
  step=$(median_field "$m" step_ms)
  [[ -n $step ]] || { echo "overlap.sh: no step_ms in $m (run output: $log)" >&2; exit 1; }
  exposed=$(median_field "$m" exposed_comm_ms)
  wire_mb=$(grep '\] comm ' "$log" | tail -1 | grep -o 'dp\.[a-z_]* [0-9.]* MB' | awk -v tp="$tp" '{ s += $2 } END { print s * tp }')
  # shellcheck disable=SC2034  # key is used in the subscripts below
  local key="$layout|$mb|$rate|$mode"
  results[step|$key]+="$step " results[wire|$key]+="$wire_mb "
  [[ -n $exposed ]] && results[exposed|$key]+="$exposed "
  local link=$rate overlap=off
  [[ $mode == compute ]] && link=off
  [[ $mode == on ]] && overlap=on
  printf '[%3d/%d] %-6s mb %-3d link %-8s overlap %-3s step %8.1f ms%s\n' "$nruns" "$total_runs" "$layout" "$mb" "$link" \
    "$overlap" "$step" "${exposed:+, exposed comm $(printf %.1f "$exposed") ms}" >&2
}
get() {  # KEY -> the median of its values, or nothing (status 0 either way: it is used in assignments)
  local v=${results[$1]:-}
  if [[ -n $v ]]; then tr ' ' '\n' <<<"${v% }" | median; fi
}

sim_hosts_up 2 off 2 || exit
seen=$(sim_hosts_mpirun -np 2 --map-by ppr:1:node hostname | sort | tr '\n' ' ')
[[ $seen == "lt-host-0 lt-host-1 " ]] || { echo "overlap.sh: expected ranks on lt-host-0 and lt-host-1, got: $seen" >&2; exit 1; }
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# Each row's three runs back to back (compute, off, on; reversed every other repetition), so a
# change in the machine's load lands on all three rather than on one column.
for layout in $LAYOUTS; do
  for mb in "$MICRO_BATCH" $((4 * MICRO_BATCH)); do
    for ((rep = 1; rep <= REPEATS; rep++)); do
      for rate in $RATES; do
        if ((rep % 2)); then order=(compute off on); else order=(on off compute); fi
        for mode in "${order[@]}"; do run_once "$layout" "$mb" "$rate" "$mode"; done
      done
    done
  done
done

# ---- the report ------------------------------------------------------------------------------------
echo
echo "overlap benchmark: $(nproc) cores, load average $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "binary: $bin (built $bin_time, copied at start); model: tests/e2e/tiny_synthetic.yaml at $LAYERS layers ($((LAYERS * 184576 + 65664)) parameters), seq 64"
echo "overlap: $mode_note${SETS:+; every run: $SETS}"
if ((${#device[@]})); then echo "device: the GPUs (train.device=cuda, NCCL)"; else echo "device: CPU backend, Open MPI over TCP (no GPU here: no GPU figure)"; fi
echo "links: two simulated hosts (lt-host-0, lt-host-1), tbf at the rate in each direction, MTU ${SIM_HOSTS_MTU:-9000}; $STEPS steps per run,"
echo "       median of steps 2..$STEPS, median of $REPEATS repetition(s); times in ms"
any_plan=0
for layout in $LAYOUTS; do
  echo
  if [[ $layout == dp2 ]]; then echo "dp=2: one rank per host, the DP reduce-scatter and all-gather cross the link"
  else echo "tp=2 x dp=2: the TP pair on one host (shared memory), DP across the link, 2 ranks per host"
  fi
  printf '%-9s %-8s %8s %8s %8s %9s %8s %8s %7s %7s %9s %9s %8s\n' size link compute comm wire step_off step_on \
    exp_off exp_on hidden on/max comm/comp planner
  for mb in "$MICRO_BATCH" $((4 * MICRO_BATCH)); do
    size="1x mb$mb"; ((mb != MICRO_BATCH)) && size="4x mb$mb"
    for rate in $RATES; do
      compute=$(get "step|$layout|$mb|$rate|compute") c_exposed=$(get "exposed|$layout|$mb|$rate|compute")
      [[ -n $c_exposed ]] && compute=$(awk -v s="$compute" -v e="$c_exposed" 'BEGIN { printf "%.3f", s - e }')
      off=$(get "step|$layout|$mb|$rate|off") on=$(get "step|$layout|$mb|$rate|on")
      eoff=$(get "exposed|$layout|$mb|$rate|off") eon=$(get "exposed|$layout|$mb|$rate|on")
      wire=$(get "wire|$layout|$mb|$rate|off")
      plan=$(planner_prediction "$layout" "$mb" "$rate" "$compute")
      [[ -n $plan ]] && any_plan=1
      awk -v size="$size" -v rate="$rate" -v c="$compute" -v off="$off" -v on="$on" -v eoff="${eoff:-}" -v eon="${eon:-}" \
        -v wire_mb="$wire" -v plan="${plan:-n/a}" 'BEGIN {
          r = rate; bits = r + 0; u = tolower(r); sub(/^[0-9.]+/, "", u)
          bits *= (u == "gbit") ? 1e9 : (u == "kbit") ? 1e3 : (u == "bit") ? 1 : 1e6
          comm = off - c; if (comm < 0) comm = 0
          wire = wire_mb * 8e6 / bits * 1000
          if (eoff != "" && eon != "" && eoff > 0) hidden = sprintf("%.0f%%", 100 * (1 - eon / eoff))
          else if (comm > 0) hidden = sprintf("%.0f%%", 100 * (1 - (on - c) / comm))
          else hidden = "n/a"
          m = (c > comm) ? c : comm
          printf "%-9s %-8s %8.1f %8.1f %8.1f %9.1f %8.1f %8s %7s %7s %9.2f %9.2f %8s\n", size, rate, c, comm, wire, off, on,
            (eoff == "") ? "n/a" : sprintf("%.1f", eoff), (eon == "") ? "n/a" : sprintf("%.1f", eon), hidden,
            on / m, (c > 0) ? comm / c : 0, plan }'
    done
  done
done
echo
((any_plan)) || echo "planner: no prediction (a compute time is missing)"
echo "on/max target: <= 1.25; comm/comp ~ 1 is the row where overlap can gain the most (up to 2x)"
echo "runtime: $((SECONDS - started)) s for $nruns runs"
