#!/usr/bin/env bash
# A link that goes down mid-run, no process dying (scripts/sim_hosts.sh: 2 simulated hosts, tp2 x
# dp2 with TP inside each host, so every DP collective crosses the link): with
# parallel.comm_timeout_s=5 the ranks on host 0 name the collective, its group, the ranks and hosts
# of that group and the step, and the job ends within the deadline + 30 s, non-zero, through
# scripts/launch.sh as a user runs it. Host 0's mpirun learns that host 1 is gone the way ssh
# tells it (the simulated hosts' agent stops after 10 unanswered probes, as ssh does after
# ServerAliveInterval x ServerAliveCountMax), after the watchdog has spoken.
# Needs root (network namespaces): without it the test fails saying so.
#
# Usage: watchdog.sh PATH_TO_llamatron WORKDIR      (CTest: multinode_watchdog)
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2" lt-wd-
export SIM_HOSTS_ALIVE_COUNT=10
sim_hosts_up 2 off 2 || { fail "simulated hosts" "sim_hosts_up failed (see above)"; finish; }
cat >"$W/cfg.yaml" <<'YAML'
model: {vocab_size: 100, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 96, max_seq_len: 16}
schedule: {warmup_steps: 0}
parallel: {tensor_parallel: 2, comm_timeout_s: 5}
train: {steps: 1000000, micro_batch_size: 2, seq_length: 16, threads: 1, precision: fp32}
logging: {log_every: 20}
YAML
launch run -n 4 -H "$(hostfile hosts 2 2)" "$W/cfg.yaml" &
job=$!
for ((i = 0; i < 600; i++)); do
  grep -qE '\] step +[1-9][0-9]+/1000000' "$W/run.out" 2>/dev/null && break  # past the first step (its deadline is 5x)
  kill -0 "$job" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q '\] step ' "$W/run.out"; then
  fail "training across 2 hosts" "no step in 60 s: $(tail -c 400 "$W/run.err")"
  kill "$job" 2>/dev/null
  finish
fi
ip -n "${SIM_HOSTS_PREFIX}1" link set eth0 down
cut=$SECONDS
for ((i = 0; i < 600; i++)); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
wait "$job"
rc=$?
took=$((SECONDS - cut))
# The wait that hangs is the DP group's (named with its ranks and hosts) or, between steps, the
# world's (the job's hosts are named).
P=$SIM_HOSTS_PREFIX
pattern="llamatron: error: watchdog: rank [01] on ${P}0 waited 5 s \(parallel.comm_timeout_s\) in step [0-9]+ for (dp\.[a-z_]+ on group dp \(2 ranks: rank [01] on ${P}0, rank [23] on ${P}1\)|MPI [a-z_]+ over 4 ranks \(rank [01] of them\) \(the job: 2 host\(s\): ${P}0 \(2 ranks\) ${P}1 \(2 ranks\)\))"
if ((rc != 0)) && ((took <= 35)) && grep -Eq "$pattern" "$W/run.err"; then
  pass "link cut: the job ended ${took} s later (deadline 5 s + 30), exit $rc: $(grep -m1 -oE 'watchdog: .* for [^;]*' "$W/run.err")"
else
  fail "link cut" "exit $rc after ${took} s; $(grep -m2 -E 'watchdog|error' "$W/run.err" | head -c 600)"
fi
finish
