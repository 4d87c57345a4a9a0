#!/usr/bin/env bash
# Launches `llamatron train` over N processes with Open MPI, on this node or on the nodes of a
# hostfile (one line per node: "node1 slots=8"). Each process takes the GPU of its node-local rank.
#
#   scripts/launch.sh -n 8 configs/tiny.yaml --set parallel.tensor_parallel=2
#   scripts/launch.sh -n 16 -H hosts.txt configs/llama-1b.yaml
#
# Environment passed to every rank: OMP_NUM_THREADS, LD_LIBRARY_PATH, and every NCCL_* variable
# (e.g. NCCL_DEBUG=INFO to see the transport NCCL picked, NCCL_IB_HCA / NCCL_SOCKET_IFNAME to choose
# the network between nodes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
np="" hostfile=""
while getopts "n:H:" opt; do
  case $opt in
    n) np=$OPTARG ;;
    H) hostfile=$OPTARG ;;
    *) echo "usage: $0 -n NPROCS [-H HOSTFILE] CONFIG [llamatron train options]" >&2; exit 1 ;;
  esac
done
shift $((OPTIND - 1))
if [[ -z $np || $# -lt 1 ]]; then
  echo "usage: $0 -n NPROCS [-H HOSTFILE] CONFIG [llamatron train options]" >&2
  exit 1
fi
bin=${LLAMATRON_BIN:-$root/build/llamatron}
[[ -x $bin ]] || { echo "$0: $bin not found: build first (scripts/build.sh)" >&2; exit 1; }
args=(-np "$np" --bind-to none -x OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" -x LD_LIBRARY_PATH)
[[ -n $hostfile ]] && args+=(--hostfile "$hostfile")
for var in $(compgen -e | grep '^NCCL_' || true); do args+=(-x "$var"); done
[[ $(id -u) -eq 0 ]] && args+=(--allow-run-as-root)
exec mpirun "${args[@]}" "$bin" train "$@"
