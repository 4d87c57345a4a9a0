# Sourced by the tests on simulated hosts (scripts/sim_hosts.sh): `source lib.sh BIN WORKDIR PREFIX`
# sets BIN, W (a fresh work directory) and ROOT, the pass/fail helpers of tests/e2e/lib.sh and
# the sim_hosts_* functions with this test's own host names (PREFIX), and fails the test, saying
# why, when it does not run as root (network namespaces need it).
BIN=$(realpath "$1")
rm -rf "$2" && mkdir -p "$2" || exit 2
W=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export SIM_HOSTS_PREFIX=$3
# shellcheck source=../e2e/lib.sh
source "$ROOT/tests/e2e/lib.sh"
# shellcheck source=../../scripts/sim_hosts.sh
source "$ROOT/scripts/sim_hosts.sh"
if [[ $(id -u) -ne 0 ]]; then
  fail "simulated hosts" "this test needs root (network and UTS namespaces, CAP_NET_ADMIN); run it as root"
  finish
fi

# hostfile NAME HOSTS SLOTS: $W/NAME listing the first HOSTS simulated hosts with SLOTS each.
hostfile() {
  local i
  : >"$W/$1"
  for ((i = 0; i < $2; i++)); do echo "${SIM_HOSTS_PREFIX}$i slots=$3" >>"$W/$1"; done
  echo "$W/$1"
}

# launch NAME LAUNCH.SH-ARGS...: scripts/launch.sh on host 0, as a user runs it there, with the
# simulated hosts' mpirun options after `--`; stdout and stderr in $W/NAME.out and .err.
launch() {
  local name=$1
  shift
  sim_hosts_mca
  sim_hosts_run_on0 env LLAMATRON_BIN="$BIN" "$ROOT/scripts/launch.sh" "$@" -- "${SIM_HOSTS_MCA[@]}" >"$W/$name.out" 2>"$W/$name.err"
}

# same_losses A.jsonl B.jsonl TOL: the same steps, each loss within TOL x max(1, |loss|); prints
# the largest difference, or what differs.
same_losses() {
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
a, b, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
def read(p):
    try:
        return {r["step"]: r["loss"] for r in map(json.loads, open(p))}
    except OSError as e:
        sys.exit(f"{p}: {e.strerror}")
x, y = read(a), read(b)
if not x or sorted(x) != sorted(y):
    sys.exit(f"steps differ: {sorted(x)} vs {sorted(y)}")
worst = max(abs(x[s] - y[s]) / max(1.0, abs(y[s])) for s in x)
print(f"{len(x)} steps, largest difference {worst:.2e}")
sys.exit(0 if worst <= tol else 1)
PY
}
