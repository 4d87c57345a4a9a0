#!/usr/bin/env bash
# Layouts across simulated hosts (scripts/sim_hosts.sh: network namespaces with their own
# hostnames, Open MPI over TCP between them) against one process, fp32: the losses of every step
# agree within 1e-6 (the sums over ranks are taken in another order; fp32 rounding of a loss near
# 4 is 2.4e-7 per step, and the first steps stay within a few of those). Each run goes through
# scripts/launch.sh with a hostfile, as a user launches one; one goes through scripts/slurm.sbatch
# with a stand-in srun.
#   2 hosts: dp2 (1 rank per host), tp2 x dp2 (TP inside hosts), pp2 x tp2 (the pipeline across
#            hosts), tp2 x pp2 x dp2 (8 ranks, 4 per host)
#   4 hosts: tp2 x dp2 (1 rank per host: TP across hosts), tp2 x pp2 x dp2 (2 per host)
#   Slurm:   tp2 x dp2 on 2 hosts from scripts/slurm.sbatch: its srun stand-in starts
#            SLURM_NTASKS ranks on the allocation's hosts with the job's environment, which is what
#            srun does; what is tested is the batch script's own part (its checks, the submit
#            directory, nccl_env.sh, threads from SLURM_CPUS_PER_TASK, the arguments it passes).
# Needs root (network namespaces): without it the test fails saying so.
#
# Usage: layouts.sh PATH_TO_llamatron WORKDIR      (CTest: multinode_layouts)
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2" lt-lay-
sim_hosts_up 4 off 4 || { fail "simulated hosts" "sim_hosts_up failed (see above)"; finish; }

cat >"$W/cfg.yaml" <<'YAML'
model: {vocab_size: 100, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 96, max_seq_len: 16}
optimizer: {lr: 3.0e-3}
schedule: {warmup_steps: 0}
train: {steps: 4, micro_batch_size: 2, global_batch_size: 8, seq_length: 16, threads: 1, precision: fp32}
logging: {log_every: 1}
YAML
OMP_NUM_THREADS=1 "$BIN" train "$W/cfg.yaml" --set logging.metrics_file="$W/one.jsonl" >"$W/one.out" 2>&1 ||
  { fail "one process" "the reference run failed: $(tail -3 "$W/one.out")"; finish; }

case_run() {  # NAME HOSTS SLOTS NP TP PP
  local name=$1 hosts=$2 slots=$3 np=$4 tp=$5 pp=$6 rc diff
  launch "$name" -n "$np" -H "$(hostfile "$name.hosts" "$hosts" "$slots")" "$W/cfg.yaml" \
    --set parallel.tensor_parallel="$tp" --set parallel.pipeline_parallel="$pp" --set logging.metrics_file="$W/$name.jsonl"
  rc=$?
  local where
  where=$(grep -o 'placement: [0-9]* host(s)' "$W/$name.out")
  if ((rc == 0)) && [[ $where == "placement: $hosts host(s)" ]] && diff=$(same_losses "$W/$name.jsonl" "$W/one.jsonl" 1e-6); then
    pass "$name on $hosts hosts ($np ranks): $diff against one process"
  else
    fail "$name on $hosts hosts" "exit $rc, '$where', $(same_losses "$W/$name.jsonl" "$W/one.jsonl" 1e-6 2>&1); $(tail -c 400 "$W/$name.err")"
  fi
}
case_run dp2 2 1 2 1 1
case_run tp2xdp2 2 2 4 2 1
case_run pp2xtp2 2 2 4 2 2
case_run tp2xpp2xdp2 2 4 8 2 2
case_run tp2xdp2-4hosts 4 1 4 2 1
case_run tp2xpp2xdp2-4hosts 4 2 8 2 2

# Slurm: scripts/slurm.sbatch with an srun that starts the ranks on the simulated hosts.
mkdir -p "$W/bin"
sim_hosts_mca
{
  echo '#!/usr/bin/env bash'
  echo '# srun stand-in: the options slurm.sbatch passes are checked, then the ranks start on the hosts.'
  echo 'opts=(); while [[ $1 == --* ]]; do opts+=("$1"); shift; done'
  echo '[[ " ${opts[*]} " == *" --mpi=pmix "* && " ${opts[*]} " == *" --kill-on-bad-exit=1 "* && " ${opts[*]} " == *" --cpus-per-task=$SLURM_CPUS_PER_TASK "* ]] ||'
  echo '  { echo "srun stand-in: unexpected options ${opts[*]}" >&2; exit 2; }'
  printf 'exec mpirun -np "$SLURM_NTASKS" --hostfile %q --map-by slot --bind-to none -x OMP_NUM_THREADS' "$(hostfile slurm.hosts 2 2)"
  printf ' %q' "${SIM_HOSTS_MCA[@]}"
  echo ' "$@"'
} >"$W/bin/srun"
chmod +x "$W/bin/srun"
(cd "$ROOT" && sim_hosts_run_on0 env PATH="$W/bin:$PATH" LLAMATRON_BIN="$BIN" SLURM_JOB_ID=1 SLURM_NTASKS=4 SLURM_NNODES=2 \
  SLURM_CPUS_PER_TASK=1 SLURM_SUBMIT_DIR="$ROOT" bash scripts/slurm.sbatch "$W/cfg.yaml" --set parallel.tensor_parallel=2 \
  --set logging.metrics_file="$W/slurm.jsonl" >"$W/slurm.out" 2>"$W/slurm.err")
rc=$?
if ((rc == 0)) && grep -q 'slurm.sbatch: 2 nodes, 4 ranks, 1 threads each' "$W/slurm.out" "$W/slurm.err" &&
   grep -q 'placement: 2 host(s)' "$W/slurm.out" && diff=$(same_losses "$W/slurm.jsonl" "$W/one.jsonl" 1e-6); then
  pass "scripts/slurm.sbatch (srun stand-in), tp2 x dp2 on 2 hosts: $diff against one process"
else
  fail "scripts/slurm.sbatch" "exit $rc; $(tail -c 500 "$W/slurm.err")"
fi
finish
