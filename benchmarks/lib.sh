# Sourced by the MPI benchmark scripts: strict mode, the repository root as the working directory,
# the CLI built if it is not, a scratch directory $work (removed on exit) and $cfg in it for the
# script's config, and `root`: mpirun's flag for running as root, when we are.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x build/llamatron ] || scripts/build.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=$work/cfg.yaml
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
