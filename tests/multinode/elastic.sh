#!/usr/bin/env bash
# A job that survives a lost host (scripts/launch.sh --restarts 2 --elastic; scripts/sim_hosts.sh:
# 4 simulated hosts with 2 ranks each, tp2 x dp4, global batch 12, a checkpoint every 3 steps).
# In the middle of the run host 2 dies: every rank on it is killed (kill -9) and its link goes down,
# as when a machine crashes. The supervisor names the cause, finds host 2 gone (mpirun named its
# dead ranks, or it does not answer), drops it, relaunches on 3 hosts as tp2 x dp3 (same global batch: 4 micro-batches
# instead of 3) from the latest complete checkpoint, and the run finishes its 15 steps:
# - the relaunch resumes at the checkpoint's step with the data position that step implies
#   (step x 12 samples): no step lost, none repeated (the second attempt logs each later step once);
# - every step's loss, before and after the loss of the host, is within 1e-5 of one process
#   training the same global batch (fp32; only the order of the sums over DP ranks differs).
# Needs root (network namespaces): without it the test fails saying so.
#
# Usage: elastic.sh PATH_TO_llamatron WORKDIR      (CTest: multinode_elastic)
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2" lt-el-
sim_hosts_up 4 off 2 || { fail "simulated hosts" "sim_hosts_up failed (see above)"; finish; }
cat >"$W/cfg.yaml" <<'YAML'
model: {vocab_size: 256, dim: 128, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 256, max_seq_len: 32}
optimizer: {lr: 3.0e-3}
schedule: {warmup_steps: 0}
parallel: {tensor_parallel: 2, comm_timeout_s: 30}
train: {steps: 15, micro_batch_size: 1, global_batch_size: 12, seq_length: 32, threads: 1, precision: fp32}
checkpoint: {every: 3}
logging: {log_every: 1}
YAML
OMP_NUM_THREADS=1 "$BIN" train "$W/cfg.yaml" --set parallel.tensor_parallel=1 --set logging.metrics_file="$W/one.jsonl" >"$W/one.out" 2>&1 ||
  { fail "one process" "the reference run failed: $(tail -3 "$W/one.out")"; finish; }

launch run -n 8 -H "$(hostfile hosts 4 2)" --restarts 2 --elastic "$W/cfg.yaml" \
  --set checkpoint.dir="$W/ckpt" --set logging.metrics_file="$W/run.jsonl" &
job=$!
for ((i = 0; i < 1200; i++)); do  # until step 7 is logged (a checkpoint at step 6 is written)
  grep -q '\] step     7/15' "$W/run.out" 2>/dev/null && break
  kill -0 "$job" 2>/dev/null || break
  sleep 0.05
done
victims=$(for p in $(ip netns pids "${SIM_HOSTS_PREFIX}2" 2>/dev/null); do [[ $(cat /proc/"$p"/comm 2>/dev/null) == llamatron ]] && echo "$p"; done)
[[ -n $victims ]] && kill -9 $victims
ip -n "${SIM_HOSTS_PREFIX}2" link set eth0 down
for ((i = 0; i < 1800; i++)); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
wait "$job"
rc=$?

# The second attempt: what it resumed from, and the steps it trained.
second=$(sed -n '/\] resumed from /,$p' "$W/run.out")  # the supervisor's lines are on stderr
resumed=$(echo "$second" | grep -m1 -oE 'resumed from .*step_([0-9]+) at step [0-9]+ \(data position [0-9]+\)')
at=$(echo "$resumed" | grep -oE 'at step [0-9]+' | grep -oE '[0-9]+$')
steps=$(echo "$second" | grep -oE '\] step +[0-9]+/' | grep -oE '[0-9]+' | tr '\n' ' ')
want=$( [[ -n $at ]] && seq $((at + 1)) 15 | tr '\n' ' ')
if [[ -n $victims ]] && grep -q "launch.sh: elastic: dropped ${SIM_HOSTS_PREFIX}2; continuing with 6 rank(s) on ${SIM_HOSTS_PREFIX}0 ${SIM_HOSTS_PREFIX}1 ${SIM_HOSTS_PREFIX}3" "$W/run.err"; then
  pass "host 2 killed: the supervisor names the cause, drops host 2 and relaunches on the other 3 ($(grep -m1 -o 'attempt 1 failed: .*' "$W/run.err"))"
else
  fail "host 2 killed" "victims '$victims'; $(grep 'launch.sh' "$W/run.err" | head -5)"
fi
if ((rc == 0)) && [[ -n $at ]] && ((at >= 6)) && [[ $resumed == *"(data position $((at * 12)))" && $steps == "$want" ]] &&
   echo "$second" | grep -q 'placement: 3 host(s)' && echo "$second" | grep -q 'tensor_parallel 2 x pipeline_parallel 1 x data_parallel 3'; then
  pass "the relaunch resumes at step $at, data position $((at * 12)), as tp2 x dp3, and trains steps $((at + 1))-15 once each"
else
  fail "resume on 3 hosts" "exit $rc; '$resumed'; steps '$steps' (want '$want'); $(tail -c 300 "$W/run.err")"
fi
if diff=$(same_losses "$W/run.jsonl" "$W/one.jsonl" 1e-5); then
  pass "every step's loss against one process: $diff"
else
  fail "losses against one process" "$diff"
fi
finish
