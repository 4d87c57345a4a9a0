#!/usr/bin/env bash
# Placement across simulated hosts (scripts/sim_hosts.sh: 2 network namespaces with their own
# hostnames, Open MPI over TCP between them): tp 2 x dp 2 on 4 ranks.
# - --map-by node puts the two ranks of each TP group on different hosts: rank 0 logs the map
#   (2 hosts, tp 2/2 groups spanning) and a warning naming --map-by; it still trains.
# - --map-by slot keeps each TP group on one host: the map says tp 0/2, no warning; the losses are
#   bit-identical to the --map-by node run (placement changes where ranks run, not the math).
# - parallel.require_tp_in_node=true with --map-by node: one "llamatron: error:" line naming the
#   switch, a non-zero exit, no crash.
# Needs root (network namespaces): without it the test fails saying so.
#
# Usage: placement.sh PATH_TO_llamatron WORKDIR      (CTest: multinode_placement)
set -u
BIN=$(realpath "$1")
rm -rf "$2" && mkdir -p "$2" || exit 2
W=$(cd "$2" && pwd)
source "$(dirname "$0")/../e2e/lib.sh"
export SIM_HOSTS_PREFIX=lt-place-  # this test's own hosts, whatever else runs
# shellcheck source=../../scripts/sim_hosts.sh
source "$(dirname "$0")/../../scripts/sim_hosts.sh"
if [[ $(id -u) -ne 0 ]]; then
  fail "simulated hosts" "this test needs root (network and UTS namespaces, CAP_NET_ADMIN); run it as root"
  finish
fi
sim_hosts_up 2 off 2 || { fail "simulated hosts" "sim_hosts_up failed (see above)"; finish; }

cat >"$W/cfg.yaml" <<'YAML'
model: {vocab_size: 100, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 96, max_seq_len: 16}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 0}
parallel: {tensor_parallel: 2}
train: {steps: 2, micro_batch_size: 2, seq_length: 16, threads: 1, precision: fp32}
logging: {log_every: 1}
YAML
run() {  # NAME MAP-BY ARGS...: mpirun -np 4 over the two hosts
  local name=$1 map=$2
  shift 2
  sim_hosts_mpirun --timeout 120 -np 4 --map-by "$map" --bind-to none -x OMP_NUM_THREADS=1 \
    "$BIN" train "$W/cfg.yaml" "$@" >"$W/$name.out" 2>"$W/$name.err"
}
losses() { grep '\] step ' "$1" | grep -o 'loss [0-9.]*'; }

run node node
rc=$?
if (( rc == 0 )) && grep -q 'placement: 2 host(s): lt-place-0 (2 ranks) lt-place-1 (2 ranks) | groups spanning hosts: tp 2/2 pp 0/4 dp 0/2' "$W/node.out" &&
   grep -q 'warning: 2 of 2 tensor-parallel groups span hosts.*--map-by slot' "$W/node.out" && [[ $(losses "$W/node.out" | wc -l) -eq 2 ]]; then
  pass "--map-by node: the map shows every TP group across hosts, a warning names --map-by, it trains"
else
  fail "--map-by node: map, warning, training" "exit $rc; $(grep -E 'placement|span' "$W/node.out" | head -3) $(head -c 300 "$W/node.err")"
fi

run slot slot
rc=$?
if (( rc == 0 )) && grep -q 'groups spanning hosts: tp 0/2 pp 0/4 dp 2/2' "$W/slot.out" && ! grep -q 'tensor-parallel groups span hosts' "$W/slot.out" &&
   [[ -n $(losses "$W/slot.out") && $(losses "$W/slot.out") == "$(losses "$W/node.out")" ]]; then
  pass "--map-by slot: TP inside each host, no warning, losses bit-identical to --map-by node"
else
  fail "--map-by slot" "exit $rc; $(grep -E 'placement|span' "$W/slot.out" | head -3); losses $(losses "$W/slot.out" | tr '\n' ' ') vs $(losses "$W/node.out" | tr '\n' ' ')"
fi

run strict node --set parallel.require_tp_in_node=true
rc=$?
errors=$(grep -c '^llamatron: error: ' "$W/strict.err")
if (( rc != 0 )) && (( errors == 1 )) && grep -q 'parallel.require_tp_in_node: 2 of 2 tensor-parallel groups span hosts' "$W/strict.err" &&
   [[ -z $(crash_sign "$W/strict.err") ]] && ! grep -q '\] step ' "$W/strict.out"; then
  pass "parallel.require_tp_in_node=true: one error line on a spread TP group, no step, no crash"
else
  fail "parallel.require_tp_in_node=true" "exit $rc, $errors error lines: $(head -c 400 "$W/strict.err")"
fi
finish
