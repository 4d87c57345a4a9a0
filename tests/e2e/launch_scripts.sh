#!/usr/bin/env bash
# The launchers without a cluster: scripts/launch.sh and scripts/slurm.sbatch run against stand-in
# `mpirun` / `srun` commands that print what they were given, so the command lines they build (rank
# count, hostfile, forwarded NCCL_* variables, the train arguments) are checked; scripts/nccl_env.sh
# sources under `set -u` and keeps values already set; every script parses (bash -n).
#
# Usage: launch_scripts.sh WORKDIR SOURCE_DIR      (CTest: launch_scripts)
set -u
W=$1 SRC=$2
rm -rf "$W" && mkdir -p "$W/bin" "$W/submit/build" "$W/submit/scripts"
source "$SRC/tests/e2e/lib.sh"
for s in "$SRC"/scripts/*.sh "$SRC"/scripts/slurm.sbatch; do
  check "bash -n $(basename "$s")" 'bash -n "$s"'
done
check "nccl_env.sh sets NCCL_DEBUG=WARN under set -u" '[ "$(env -u NCCL_DEBUG bash -uc ". $SRC/scripts/nccl_env.sh; echo \$NCCL_DEBUG")" = WARN ]'
check "nccl_env.sh keeps a value already set" '[ "$(NCCL_DEBUG=INFO bash -uc ". $SRC/scripts/nccl_env.sh; echo \$NCCL_DEBUG")" = INFO ]'

# Stand-ins that print their arguments (and the environment they would pass on).
printf '#!/bin/sh\necho "mpirun $*"\n' >"$W/bin/mpirun"
printf '#!/bin/sh\necho "srun $* | OMP_NUM_THREADS=$OMP_NUM_THREADS NCCL_DEBUG=$NCCL_DEBUG"\n' >"$W/bin/srun"
printf '#!/bin/sh\necho llamatron\n' >"$W/submit/build/llamatron"
chmod +x "$W/bin/mpirun" "$W/bin/srun" "$W/submit/build/llamatron"

printf 'node1 slots=8\nnode2 slots=8\n' >"$W/hosts.txt"
out=$(cd "$W" && env -u LD_LIBRARY_PATH PATH="$W/bin:$PATH" LLAMATRON_BIN="$W/submit/build/llamatron" NCCL_SOCKET_IFNAME=eth0 \
      bash "$SRC/scripts/launch.sh" -n 16 -H hosts.txt cfg.yaml --set train.steps=5 -- --map-by ppr:8:node --mca btl_tcp_if_include eth0 2>&1)
check "launch.sh: 16 ranks over the hostfile, NCCL_* forwarded, train arguments passed, mpirun options after --" \
  'echo "$out" | grep -q -- "-np 16" && echo "$out" | grep -q -- "--hostfile hosts.txt" && echo "$out" | grep -q -- "-x NCCL_SOCKET_IFNAME" && echo "$out" | grep -q -- "--map-by ppr:8:node --mca btl_tcp_if_include eth0 .*llamatron train cfg.yaml --set train.steps=5$"' "$out"
check "launch.sh: LD_LIBRARY_PATH unset is not exported (mpirun would warn)" '! echo "$out" | grep -q LD_LIBRARY_PATH' "$out"
check "launch.sh with a hostfile: ssh keep-alives for a lost host" 'echo "$out" | grep -q "plm_rsh_args -o ServerAliveInterval=10"' "$out"
out=$(cd "$W" && bash "$SRC/scripts/launch.sh" -n 4 -H missing.txt cfg.yaml 2>&1); rc=$?
check "launch.sh with a missing hostfile: one line, exit 1" '[ $rc -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "hostfile missing.txt not found"' "$out"
out=$(bash "$SRC/scripts/launch.sh" 2>&1); rc=$?
check "launch.sh without arguments: usage, exit 1" '[ $rc -eq 1 ] && echo "$out" | grep -q usage'

cp "$SRC/scripts/nccl_env.sh" "$W/submit/scripts/" && echo "model: {dim: 64}" >"$W/submit/cfg.yaml"
slurm() { (cd "$W/submit" && env PATH="$W/bin:$PATH" SLURM_SUBMIT_DIR="$W/submit" "$@" bash "$SRC/scripts/slurm.sbatch" "${ARGS[@]}" 2>&1); }
ARGS=(cfg.yaml --set train.steps=7)
out=$(slurm SLURM_JOB_ID=1 SLURM_CPUS_PER_TASK=12 SLURM_NNODES=8 SLURM_NTASKS=64); rc=$?
check "slurm.sbatch: srun with PMIx, kill on a failed rank, 12 threads, NCCL_DEBUG=WARN, the train arguments" \
  '[ $rc -eq 0 ] && echo "$out" | grep -q "srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task=12 .*llamatron train cfg.yaml --set train.steps=7 | OMP_NUM_THREADS=12 NCCL_DEBUG=WARN"' "$out"
ARGS=()
out=$(slurm SLURM_JOB_ID=1); rc=$?
check "slurm.sbatch without a config: usage, exit 1" '[ $rc -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q usage' "$out"
ARGS=(missing.yaml)
out=$(slurm SLURM_JOB_ID=1); rc=$?
check "slurm.sbatch with a missing config: one line, exit 1" '[ $rc -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "missing.yaml not found"' "$out"
ARGS=(cfg.yaml)
out=$(slurm SLURM_JOB_ID=1 LLAMATRON_BIN=/nonexistent); rc=$?
check "slurm.sbatch without the binary: one line, exit 1" '[ $rc -eq 1 ] && echo "$out" | grep -q "/nonexistent not found"' "$out"
out=$(slurm); rc=$?
check "slurm.sbatch outside a Slurm job: one line, exit 1" '[ $rc -eq 1 ] && echo "$out" | grep -q "not in a Slurm job"' "$out"
# An mpirun that aborted the job (a rank failed) but then waits on a daemon behind a dead link: stopped
# the grace period later (15 s; 3 here, LLAMATRON_ABORT_GRACE_S), status 1, saying why.
mkdir -p "$W/hang"
printf '#!/bin/sh\necho "Per user-direction, the job has been aborted." >&2\nexec sleep 120\n' >"$W/hang/mpirun"
chmod +x "$W/hang/mpirun"
start=$SECONDS
out=$(cd "$W" && PATH="$W/hang:$PATH" LLAMATRON_BIN="$W/submit/build/llamatron" LLAMATRON_ABORT_GRACE_S=3 bash "$SRC/scripts/launch.sh" -n 2 cfg.yaml 2>&1)
rc=$? took=$((SECONDS - start))
check "launch.sh: an mpirun still waiting 3 s after it aborted the job is stopped, status 1 (took ${took} s)" \
  '[ $rc -eq 1 ] && (( took >= 3 && took < 25 )) && echo "$out" | grep -q "mpirun still waits 3 s after it aborted the job"' "rc $rc: $out"

finish
