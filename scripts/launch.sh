#!/usr/bin/env bash
# Launches `llamatron train` over N processes with Open MPI: on this node, on the nodes of a
# hostfile (one line per node: "node1 slots=8"), or inside a Slurm allocation. Each process takes
# the GPU of its node-local rank. docs/launching.md has the whole story.
#
#   scripts/launch.sh -n 8 configs/tiny.yaml --set parallel.tensor_parallel=2
#   scripts/launch.sh -n 16 -H hosts.txt configs/llama-1b.yaml -- --mca btl_tcp_if_include eth0
#   scripts/launch.sh -n 16 -H hosts.txt --restarts 3 --elastic configs/llama-1b.yaml
#
# Options (before the config):
#   -n N            processes (default under Slurm: $SLURM_NTASKS)
#   -H FILE         hostfile
#   --restarts R    when the job fails because a rank died or the watchdog ended it, relaunch it up
#                   to R times; it resumes from the latest complete checkpoint (checkpoint.dir)
#   --elastic       before relaunching, drop the hosts that failed (whose ranks died, or that do
#                   not answer) and continue on the rest: same TP and PP, TP inside hosts, fewer DP
#                   ranks, the same global batch (llamatron resize); needs -H
# After the config: `llamatron train` options (--set KEY=VALUE ...); after `--`: mpirun options,
# passed as they are (--map-by, --mca, an rsh agent, ...). LLAMATRON_MPIRUN_ARGS: more mpirun
# options, split at spaces, before those.
#
# Environment passed to every rank: OMP_NUM_THREADS (default 1), LD_LIBRARY_PATH when set, and
# every NCCL_* and LLAMATRON_* variable (e.g. NCCL_DEBUG=INFO to see the transport NCCL picked,
# NCCL_SOCKET_IFNAME to choose the network between nodes). OMPI_MCA_* variables are Open MPI's own.
#
# Across hosts (-H): the remote daemons stay attached to their ssh sessions and ssh checks the
# link every 10 s (orte_leave_session_attached, plm_rsh_args ServerAlive*), so mpirun ends the job
# within ~30 s when a host stops answering, instead of waiting on it; options after `--` that set
# plm_rsh_args or plm_rsh_agent replace this. Open MPI's all-reduce takes the ring algorithm
# (llamatron sets it before MPI starts, for every launcher; docs/launching.md, "All-reduce algorithm").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
me=launch.sh
usage() {
  echo "usage: $0 [-n NPROCS] [-H HOSTFILE] [--restarts N] [--elastic] CONFIG [llamatron train options] [-- mpirun options]" >&2
  exit 1
}
np=${SLURM_NTASKS:-} hostfile="" restarts=0 elastic=0
while (($#)); do
  case $1 in
    -n) np=${2:-}; shift 2 || usage ;;
    -H) hostfile=${2:-}; shift 2 || usage ;;
    --restarts) restarts=${2:-}; shift 2 || usage ;;
    --elastic) elastic=1; shift ;;
    -h|--help) usage ;;
    -*) echo "$me: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
(($# >= 1)) || usage
[[ $np =~ ^[1-9][0-9]*$ ]] || { echo "$me: -n needs a process count (got '${np}')" >&2; usage; }
[[ $restarts =~ ^[0-9]+$ ]] || { echo "$me: --restarts needs a count (got '$restarts')" >&2; exit 1; }
[[ -z $hostfile || -r $hostfile ]] || { echo "$me: hostfile $hostfile not found" >&2; exit 1; }
((elastic == 0)) || [[ -n $hostfile ]] || { echo "$me: --elastic needs a hostfile (-H): it relaunches on the hosts that are left" >&2; exit 1; }
config=$1; shift
train_args=() mpi_user=()
while (($#)); do
  if [[ $1 == -- ]]; then shift; mpi_user=("$@"); break; fi
  train_args+=("$1"); shift
done
# shellcheck disable=SC2206  # split at spaces, as documented
[[ -n ${LLAMATRON_MPIRUN_ARGS:-} ]] && mpi_user=(${LLAMATRON_MPIRUN_ARGS} "${mpi_user[@]}")
bin=${LLAMATRON_BIN:-$root/build/llamatron}
[[ -x $bin ]] || { echo "$me: $bin not found: build first (scripts/build.sh)" >&2; exit 1; }

mpi_env=(--bind-to none -x OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}")
[[ -n ${LD_LIBRARY_PATH:-} ]] && mpi_env+=(-x LD_LIBRARY_PATH)
for var in $(compgen -e | grep -E '^(NCCL|LLAMATRON)_' || true); do mpi_env+=(-x "$var"); done
[[ $(id -u) -eq 0 ]] && mpi_env+=(--allow-run-as-root)
user_sets() {  # PARAM: whether the user's options or environment set this MCA parameter
  local v=OMPI_MCA_$1
  [[ " ${mpi_user[*]} " == *" $1 "* || -n ${!v:-} ]]
}
if [[ -n $hostfile ]]; then
  user_sets orte_leave_session_attached || mpi_env+=(--mca orte_leave_session_attached 1)
  user_sets plm_rsh_args || user_sets plm_rsh_agent || mpi_env+=(--mca plm_rsh_args "-o ServerAliveInterval=10 -o ServerAliveCountMax=3")
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/llamatron-launch.XXXXXX")
job=""
trap 'rm -rf "$work"' EXIT
trap '[[ -n $job ]] && kill -TERM "$job" 2>/dev/null; exit 143' TERM
trap '[[ -n $job ]] && kill -INT "$job" 2>/dev/null; exit 130' INT
say() { echo "$me: $*" >&2; }

# run_job LOG MPIRUN-ARGS...: mpirun, its stderr also in LOG. When the job has ended, because a
# rank's watchdog ended it (a "watchdog:" line) or because a rank failed and mpirun aborted the job
# (a peer's connection to a lost host refused, say), mpirun normally ends the others within seconds,
# but one whose remote daemon sits behind a dead link can wait on it for as long as TCP retries
# (~15 min): after 15 s (LLAMATRON_ABORT_GRACE_S) it is stopped (TERM, then KILL 3 s later) and the
# status is the watchdog's, 75, or 1 (a rank failed). Else mpirun's status.
run_job() {
  local log=$1 i rc=0 stopped="" why grace=${LLAMATRON_ABORT_GRACE_S:-15}
  shift
  : >"$log"
  mpirun "$@" 2> >(tee -a "$log" >&2) &
  job=$!
  while kill -0 "$job" 2>/dev/null; do
    why=""
    if grep -q 'llamatron: error: watchdog:' "$log"; then why="the watchdog ended the job"
    elif grep -q 'the job has been aborted' "$log"; then why="it aborted the job"
    fi
    if [[ -n $why ]]; then
      for ((i = 0; i < grace * 10; i++)); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$job" 2>/dev/null; then
        say "mpirun still waits $grace s after $why (a host behind a dead link): stopping it"
        kill -TERM "$job" 2>/dev/null; sleep 3; kill -KILL "$job" 2>/dev/null
        stopped=$why
      fi
      break
    fi
    sleep 0.5
  done
  wait "$job" || rc=$?
  job=""
  [[ $stopped == "the watchdog"* ]] && rc=75  # the watchdog's status (watchdog.h)
  [[ $stopped == "it aborted"* ]] && rc=1
  return "$rc"
}

if ((restarts == 0)); then
  args=(-np "$np" "${mpi_env[@]}")
  [[ -n $hostfile ]] && args+=(--hostfile "$hostfile")
  rc=0
  run_job "$work/job.log" "${args[@]}" "${mpi_user[@]}" "$bin" train "$config" "${train_args[@]}" || rc=$?
  exit "$rc"
fi

# ---- the supervisor -----------------------------------------------------------------------------
hosts=() slots=()  # the hosts still in use, with their slots
if [[ -n $hostfile ]]; then
  while read -r h rest; do
    [[ -z $h || $h == \#* ]] && continue
    s=1; [[ $rest =~ slots=([0-9]+) ]] && s=${BASH_REMATCH[1]}
    hosts+=("$h"); slots+=("$s")
  done <"$hostfile"
fi
mca_only=()  # the user's --mca pairs: what a probe of one host needs (an rsh agent, interfaces)
for ((i = 0; i + 2 < ${#mpi_user[@]}; i++)); do
  [[ ${mpi_user[i]} == --mca ]] && mca_only+=(--mca "${mpi_user[i + 1]}" "${mpi_user[i + 2]}")
done
root_flag=()
[[ $(id -u) -eq 0 ]] && root_flag=(--allow-run-as-root)

# The hosts whose ranks died in attempt LOG (mpirun names the first one it noticed), one per line.
failed_hosts() { grep -oE 'on node [^ ]+ exited on signal' "$1" | awk '{print $3}' | sort -u || true; }
# Why attempt LOG failed, in one line ("ERROR ..." when the job failed with an error of its own).
cause_of() {
  local log=$1 line
  if line=$(grep -m1 'llamatron: error: watchdog:' "$log"); then echo "${line#*error: }"
  elif line=$(grep -m1 -oE 'process rank [0-9]+ with PID [0-9]+ on node [^ ]+ exited on signal [0-9]+( \([^)]*\))?' "$log"); then echo "$line"
  elif line=$(grep -m1 'llamatron: error:' "$log"); then echo "ERROR ${line#*error: }"
  else echo "mpirun exited with status $2"
  fi
}
# Whether HOST starts a process within 30 s.
reachable() { timeout 30 mpirun -np 1 --host "$1" "${root_flag[@]}" "${mca_only[@]}" true >/dev/null 2>&1; }

run_np=$np extra=()
for ((attempt = 0; ; attempt++)); do
  args=(-np "$run_np" "${mpi_env[@]}")
  if ((${#hosts[@]})); then
    : >"$work/hostfile"
    for i in "${!hosts[@]}"; do echo "${hosts[i]} slots=${slots[i]}" >>"$work/hostfile"; done
    args+=(--hostfile "$work/hostfile")
  fi
  say "attempt $((attempt + 1)) of $((restarts + 1)): $run_np rank(s)${hosts[*]:+ on ${hosts[*]}}"
  rc=0
  run_job "$work/attempt.log" "${args[@]}" "${mpi_user[@]}" "$bin" train "$config" "${train_args[@]}" "${extra[@]}" || rc=$?
  ((rc == 0)) && { ((attempt == 0)) || say "finished after $attempt restart(s)"; exit 0; }
  cause=$(cause_of "$work/attempt.log" "$rc")
  if [[ $cause == ERROR* ]]; then
    say "the job failed with an error of its own (${cause#ERROR }): not restarting, fix it and launch again"
    exit "$rc"
  fi
  say "attempt $((attempt + 1)) failed: $cause"
  ((attempt < restarts)) || { say "no restarts left (--restarts $restarts)"; exit "$rc"; }
  if ((elastic)); then
    keep_h=() keep_s=() dropped=() dead=" $(failed_hosts "$work/attempt.log" | tr '\n' ' ') "
    for i in "${!hosts[@]}"; do
      if [[ $dead == *" ${hosts[i]} "* ]] || ! reachable "${hosts[i]}"; then dropped+=("${hosts[i]}"); continue; fi
      keep_h+=("${hosts[i]}"); keep_s+=("${slots[i]}")
    done
    if ((${#dropped[@]})); then
      spec=$(for i in "${!keep_h[@]}"; do printf '%s:%s,' "${keep_h[i]}" "${keep_s[i]}"; done)
      sets=()  # the run's overrides, and the last resize's: what the layout is now
      for ((i = 0; i + 1 < ${#train_args[@]}; i++)); do [[ ${train_args[i]} == --set ]] && sets+=(--set "${train_args[i + 1]}"); done
      sets+=("${extra[@]}")
      if ! plan=$("$bin" resize "$config" "${sets[@]}" --from-ranks "$run_np" --hosts "${spec%,}" 2>&1); then
        say "dropping ${dropped[*]} leaves no layout: $plan"
        exit "$rc"
      fi
      hosts=() slots=() extra=()
      while read -r kind a b; do
        case $kind in
          np) run_np=$a ;;
          host) hosts+=("$a"); slots+=("$b") ;;
          set) extra+=(--set "$a") ;;
        esac
      done < <(printf '%s\n' "$plan")
      say "elastic: dropped ${dropped[*]}; continuing with $run_np rank(s) on ${hosts[*]} (${extra[*]})"
    fi
  fi
  say "restarting ($((attempt + 1)) of $restarts) from the latest complete checkpoint"
done
