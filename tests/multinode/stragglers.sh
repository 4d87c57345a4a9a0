#!/usr/bin/env bash
# A slow host (scripts/sim_hosts.sh: 4 simulated hosts, one rank each, dp4): host 3's rank is
# stopped three quarters of the time (SIGSTOP / SIGCONT every 40 ms: a CPU quota that works on any
# kernel), and the log names rank 3 on host 3 as a straggler (train.straggler_factor 1.3), and no
# other rank. Needs root (network namespaces): without it the test fails saying so.
#
# Usage: stragglers.sh PATH_TO_llamatron WORKDIR      (CTest: multinode_stragglers)
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2" lt-st-
sim_hosts_up 4 off 1 || { fail "simulated hosts" "sim_hosts_up failed (see above)"; finish; }
cat >"$W/cfg.yaml" <<'YAML'
model: {vocab_size: 100, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 96, max_seq_len: 32}
schedule: {warmup_steps: 0}
train: {steps: 60, micro_batch_size: 4, seq_length: 32, threads: 1, precision: fp32, straggler_factor: 1.3}
logging: {log_every: 20}
YAML
launch run -n 4 -H "$(hostfile hosts 4 1)" "$W/cfg.yaml" &
job=$!
slow=""
for ((i = 0; i < 300 && ${#slow} == 0; i++)); do
  slow=$(for p in $(ip netns pids "${SIM_HOSTS_PREFIX}3" 2>/dev/null); do [[ $(cat /proc/"$p"/comm 2>/dev/null) == llamatron ]] && echo "$p"; done)
  sleep 0.1
done
while kill -0 "$job" 2>/dev/null; do
  kill -STOP $slow 2>/dev/null; sleep 0.03
  kill -CONT $slow 2>/dev/null; sleep 0.01
done
wait "$job"
rc=$?
named=$(grep 'warning: straggler' "$W/run.out" | grep -o 'rank [0-9]* on [^:]*' | sort -u | tr '\n' ' ')
if ((rc == 0)) && [[ -n $slow && $named == "rank 3 on ${SIM_HOSTS_PREFIX}3 " ]]; then
  pass "a slowed host: $(grep -m1 -o 'rank 3 on .*' "$W/run.out")"
else
  fail "a slowed host" "exit $rc, slowed pid '$slow', named: '$named'; $(grep -m2 straggler "$W/run.out") $(tail -c 300 "$W/run.err")"
fi
finish
