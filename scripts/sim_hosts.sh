#!/usr/bin/env bash
# Simulated hosts on one Linux machine, for multi-node runs without a cluster: N "hosts", each a
# network namespace with its own hostname, joined through a bridge at a shaped link speed, and an
# mpirun that starts ranks on them as it would over ssh. Needs root (CAP_NET_ADMIN for the links,
# CAP_SYS_ADMIN for the namespaces); without it every entry point says so and fails (status 2).
#
# As a library (sourced; the functions return non-zero on failure, they never exit the caller):
#   . scripts/sim_hosts.sh
#   sim_hosts_up 2 100mbit [SLOTS]     # hosts lt-host-0, lt-host-1; SLOTS per host in the hostfile (1)
#   sim_hosts_mpirun -np 2 --map-by ppr:1:node hostname   # prints lt-host-0 and lt-host-1
#   sim_hosts_mca; sim_hosts_run_on0 scripts/launch.sh -n 2 -H "$(sim_hosts_hostfile)" cfg.yaml -- "${SIM_HOSTS_MCA[@]}"
#   sim_hosts_set_rate 400mbit         # reshape every link ("off": unshaped)
#   sim_hosts_exec 1 ip addr           # a command on host 1 (index or name)
#   sim_hosts_measure_mbit 0 1 20      # TCP throughput host 0 -> host 1 over 20 MB, in Mbit/s
#   sim_hosts_down                     # also run by the EXIT/INT/TERM traps sim_hosts_up installs
# As a command: scripts/sim_hosts.sh with N RATE -- CMD...  (up, CMD, down; CMD can call the
# commands below), scripts/sim_hosts.sh {up N RATE [SLOTS] | down | mpirun ARGS... | exec HOST CMD... |
# rate RATE | measure FROM TO [MB]}; `up` leaves the hosts up for later commands, `down` removes them.
#
# Layout (prefix P = $SIM_HOSTS_PREFIX, default lt-host-):
#   netns P0 .. P<N-1>  one per host: lo, and eth0 = 198.18.0.<i+1>/24 (IPv6 off: no other address)
#   netns Psw           the switch: bridge br0 with the veth ports p0 .. p<N-1> (no address at all)
#   eth0 <-> p<i>       a veth pair; tbf on eth0 (host -> switch) and on p<i> (switch -> host), so
#                       each host's link is RATE in each direction, like a NIC on a switch port
#   hostnames           every command runs as `ip netns exec P<i> unshare --uts` with hostname P<i>
#   /etc/netns/P<i>/hosts  the names of all hosts; `ip netns exec` bind-mounts it over /etc/hosts
#   /run/P/hostfile     "P<i> slots=SLOTS" per host, for mpirun
# The machine's own namespaces are never changed: nothing is added to, addressed in or routed
# through the root network namespace, and the only addresses are in 198.18.0.0/24 (RFC 2544's
# benchmarking range) inside the namespaces above.
#
# mpirun (Open MPI 4.x) runs on host 0, so its out-of-band address is reachable from the others;
# it starts the orted of every other host through this script as its rsh agent
# (plm_rsh_agent="sim_hosts.sh agent"): the agent gets "HOST COMMAND..." as ssh would and runs the
# command with /bin/sh in HOST's namespaces, and like `ssh -o ServerAliveInterval=1
# -o ServerAliveCountMax=3` it ends with 255 when HOST stops answering (its link is down), so mpirun
# learns the host is gone. MCA settings (sim_hosts_mca): plm rsh, the agent, no tree spawn, the
# orteds attached to their agent (orte_leave_session_attached: not daemonised, so a lost agent is
# a lost daemon); oob_tcp_if_include and btl_tcp_if_include = 198.18.0.0/24, pml ob1 (so UCX or
# libfabric never pick their own interfaces), btl tcp,vader,self (ranks on one host talk through
# shared memory, as GPUs of one node would through NVLink; SIM_HOSTS_BTL to change it). Root runs
# get OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1.
#
# Cleanup: sim_hosts_up takes a lock (/run/P.lock, flock), removes what a killed earlier run left
# (its processes, by pid from `ip netns pids`, then its namespaces, /etc/netns entries and Open
# MPI session directories /tmp/ompi.P<i>.*) and
# chains sim_hosts_down into the caller's EXIT trap (INT and TERM: down, then the signal again).
# Environment: SIM_HOSTS_PREFIX, SIM_HOSTS_BTL, SIM_HOSTS_TBF_LATENCY (tbf queue, default 200ms),
# SIM_HOSTS_MTU (9000, jumbo frames as on cluster fabrics: at 1500 the packets' softirq work took
# ~15% of a 2-core machine at 200 Mbit/s, CPU that real NICs do not take from the computation),
# SIM_HOSTS_NO_TRAP=1 (the caller calls sim_hosts_down itself).

SIM_HOSTS_PREFIX=${SIM_HOSTS_PREFIX:-lt-host-}
SIM_HOSTS_SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
SIM_HOSTS_SUBNET=198.18.0.0/24
SIM_HOSTS_N=${SIM_HOSTS_N:-0}
SIM_HOSTS_RATE=${SIM_HOSTS_RATE:-off}

_sim_hosts_err() { echo "sim_hosts: $*" >&2; }
_sim_hosts_state() { echo "/run/${SIM_HOSTS_PREFIX%-}"; }
_sim_hosts_ns() {  # HOST (index, name or address) -> namespace name
  local h=$1
  case $h in
    "$SIM_HOSTS_PREFIX"sw) ;;
    "$SIM_HOSTS_PREFIX"[0-9]*) h=${h#"$SIM_HOSTS_PREFIX"} ;;
    198.18.0.[0-9]*) h=$((${h##*.} - 1)) ;;
  esac
  [[ $h == "$SIM_HOSTS_PREFIX"sw ]] && { echo "$h"; return; }
  [[ $h =~ ^[0-9]+$ ]] || { _sim_hosts_err "unknown host '$1' (expected ${SIM_HOSTS_PREFIX}I, I or 198.18.0.I+1)"; return 1; }
  [[ -e /run/netns/$SIM_HOSTS_PREFIX$h ]] || { _sim_hosts_err "no simulated host $SIM_HOSTS_PREFIX$h (sim_hosts_up first)"; return 1; }
  echo "$SIM_HOSTS_PREFIX$h"
}

_sim_hosts_need_root() {
  ((EUID == 0)) && return 0
  _sim_hosts_err "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for network and UTS namespaces); running as uid $EUID"
  return 2
}

# Root, the tools, and the kernel features, checked by doing a little of each; says what is missing.
_sim_hosts_preflight() {
  local tool out
  for tool in ip tc unshare flock mpirun; do
    command -v "$tool" >/dev/null || { _sim_hosts_err "'$tool' not found (iproute2, util-linux, openmpi-bin)"; return 2; }
  done
  _sim_hosts_need_root || return
  if ! out=$(unshare --net --uts -- ip link add lt-probe type veth peer name lt-probe1 2>&1); then
    _sim_hosts_err "cannot create network/UTS namespaces and veth pairs (needs CAP_SYS_ADMIN and CAP_NET_ADMIN): $out"
    return 2
  fi
}

_sim_hosts_rate_bits() {  # RATE (100mbit, 1.5gbit, 800kbit, 100 = Mbit/s) -> bits/s on stdout
  local r=${1,,} num unit
  [[ $r =~ ^([0-9]+(\.[0-9]+)?)(bit|kbit|mbit|gbit)?$ ]] || { _sim_hosts_err "bad rate '$1' (e.g. 100mbit, 1gbit, 500kbit, off)"; return 1; }
  num=${BASH_REMATCH[1]} unit=${BASH_REMATCH[3]:-mbit}
  awk -v n="$num" -v u="$unit" 'BEGIN { m = (u == "gbit") ? 1e9 : (u == "mbit") ? 1e6 : (u == "kbit") ? 1e3 : 1;
    b = n * m; if (b < 8000) exit 1; printf "%.0f\n", b }' || { _sim_hosts_err "rate '$1' below 8kbit"; return 1; }
}

# _sim_hosts_shape NS DEV RATE: tbf on DEV's egress, or none for "off". The burst is 2 ms at the
# rate and at least 64 KiB (one GSO super-packet of the veth passes unsplit); the queue holds
# SIM_HOSTS_TBF_LATENCY, long enough that TCP's bursts are delayed rather than dropped.
_sim_hosts_shape() {
  local ns=$1 dev=$2 rate=$3 bits burst
  tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null || true
  [[ ${rate,,} == off || $rate == 0 ]] && return 0
  bits=$(_sim_hosts_rate_bits "$rate") || return 1
  burst=$(( bits / 8 / 500 )); (( burst < 65536 )) && burst=65536
  tc -n "$ns" qdisc add dev "$dev" root tbf rate "$bits"bit burst "$burst" latency "${SIM_HOSTS_TBF_LATENCY:-200ms}" || {
    _sim_hosts_err "tc tbf failed on $dev in $ns (is sch_tbf in this kernel?)"; return 1; }
}

# Ends the processes left in our namespaces (a killed run's orted and ranks), by pid: TERM, then KILL.
_sim_hosts_kill_ns_pids() {
  local ns pids=() i
  for ns in "$@"; do mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null); done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for i in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 "${pids[@]}" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

# Removes every namespace, /etc/netns entry and state file with our prefix (ours or a dead run's).
_sim_hosts_remove_all() {
  local names=() ns
  mapfile -t names < <(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${SIM_HOSTS_PREFIX}([0-9]+|sw)\$")
  ((${#names[@]})) && _sim_hosts_kill_ns_pids "${names[@]}"
  for ns in "${names[@]}"; do ip netns del "$ns" 2>/dev/null || _sim_hosts_err "could not delete netns $ns"; done
  rm -rf /etc/netns/"$SIM_HOSTS_PREFIX"[0-9]* "$(_sim_hosts_state)"
  rm -rf "${TMPDIR:-/tmp}"/ompi."$SIM_HOSTS_PREFIX"[0-9]*.*  # Open MPI session dirs (named by hostname) a killed run left
  rmdir /etc/netns 2>/dev/null || true  # only when empty: created by us, or by nobody that uses it
}

_sim_hosts_lock() {
  [[ -n ${SIM_HOSTS_LOCK_FD:-} ]] && return 0
  local lock=/run/${SIM_HOSTS_PREFIX%-}.lock
  exec {SIM_HOSTS_LOCK_FD}>>"$lock" || { _sim_hosts_err "cannot open $lock"; return 2; }
  if ! flock -n "$SIM_HOSTS_LOCK_FD"; then
    _sim_hosts_err "another run uses the ${SIM_HOSTS_PREFIX}* hosts (pid $(cat "$lock.pid" 2>/dev/null || echo '?') holds $lock); set SIM_HOSTS_PREFIX for a second set"
    exec {SIM_HOSTS_LOCK_FD}>&-; unset SIM_HOSTS_LOCK_FD
    return 2
  fi
  echo $$ >"$lock.pid"
}
_sim_hosts_unlock() {
  [[ -n ${SIM_HOSTS_LOCK_FD:-} ]] || return 0
  rm -f "/run/${SIM_HOSTS_PREFIX%-}.lock.pid"
  exec {SIM_HOSTS_LOCK_FD}>&-
  unset SIM_HOSTS_LOCK_FD
}

# Appends sim_hosts_down to the caller's trap for SIG (keeping what was there).
_sim_hosts_chain_trap() {
  local sig=$1 prev
  prev=$(trap -p "$sig")
  [[ $prev == *sim_hosts_down* ]] && return 0
  if [[ -n $prev ]]; then eval "set -- ${prev#trap -- }"; prev=$1; fi
  # shellcheck disable=SC2064  # the previous trap and the signal are fixed now, on purpose
  if [[ $sig == EXIT ]]; then trap "sim_hosts_down; ${prev:-:}" EXIT
  else trap "sim_hosts_down; ${prev:-:}; trap - $sig; kill -$sig \$\$" "$sig"
  fi
}

# _sim_hosts_build N SLOTS HOSTS_TEXT: the switch, the hosts, their links, /etc/netns and the hostfile.
_sim_hosts_build() {
  local n=$1 slots=$2 hosts=$3 sw=${SIM_HOSTS_PREFIX}sw state i ns mtu=${SIM_HOSTS_MTU:-9000}
  [[ $mtu =~ ^[0-9]+$ ]] && ((mtu >= 1280 && mtu <= 65535)) || { _sim_hosts_err "bad SIM_HOSTS_MTU '$mtu' (1280..65535)"; return 1; }
  state=$(_sim_hosts_state)
  local no_v6='echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6'
  ip netns add "$sw" && ip netns exec "$sw" sh -c "$no_v6" || return
  ip -n "$sw" link add br0 type bridge && ip -n "$sw" link set br0 up || return
  for ((i = 0; i < n; i++)); do
    ns=$SIM_HOSTS_PREFIX$i
    ip netns add "$ns" && ip netns exec "$ns" sh -c "$no_v6" || return
    ip -n "$sw" link add "p$i" type veth peer name eth0 netns "$ns" || return
    ip -n "$sw" link set "p$i" master br0 up || return
    ip -n "$sw" link set "p$i" mtu "$mtu" && ip -n "$ns" link set eth0 mtu "$mtu" || return
    ip -n "$ns" link set lo up && ip -n "$ns" addr add "198.18.0.$((i + 1))/24" dev eth0 && ip -n "$ns" link set eth0 up || return
    mkdir -p "/etc/netns/$ns" && printf '%s' "$hosts" >"/etc/netns/$ns/hosts" || return
    echo "$ns slots=$slots" >>"$state/hostfile" || return
  done
}

# sim_hosts_up N [RATE] [SLOTS]: N hosts (1..254) linked at RATE (default off: unshaped).
sim_hosts_up() {
  local n=${1:-}; local rate=${2:-off} slots=${3:-1} i state hosts out
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 254)) || { _sim_hosts_err "usage: sim_hosts_up N(1..254) [RATE] [SLOTS]"; return 1; }
  [[ $slots =~ ^[1-9][0-9]*$ ]] || { _sim_hosts_err "bad SLOTS '$slots'"; return 1; }
  [[ ${rate,,} == off || $rate == 0 ]] || _sim_hosts_rate_bits "$rate" >/dev/null || return 1
  _sim_hosts_preflight || return
  _sim_hosts_lock || return
  _sim_hosts_remove_all
  if [[ ${SIM_HOSTS_NO_TRAP:-0} != 1 ]]; then
    _sim_hosts_chain_trap EXIT; _sim_hosts_chain_trap INT; _sim_hosts_chain_trap TERM
  fi
  state=$(_sim_hosts_state)
  mkdir -p "$state" /etc/netns
  hosts=$'127.0.0.1\tlocalhost\n'
  for ((i = 0; i < n; i++)); do hosts+="198.18.0.$((i + 1))"$'\t'"$SIM_HOSTS_PREFIX$i"$'\n'; done
  : >"$state/hostfile"
  if ! out=$(_sim_hosts_build "$n" "$slots" "$hosts" 2>&1); then
    _sim_hosts_err "setting up the namespaces failed: $out"
    sim_hosts_down; return 2
  fi
  SIM_HOSTS_N=$n
  echo "$n" >"$state/n"
  sim_hosts_set_rate "$rate" || { sim_hosts_down; return 2; }
}

# sim_hosts_set_rate RATE: every link at RATE in both directions ("off": unshaped).
sim_hosts_set_rate() {
  local rate=${1:?sim_hosts_set_rate RATE} n i state
  _sim_hosts_need_root || return
  state=$(_sim_hosts_state)
  n=$(cat "$state/n" 2>/dev/null) || { _sim_hosts_err "no simulated hosts (sim_hosts_up first)"; return 1; }
  for ((i = 0; i < n; i++)); do
    _sim_hosts_shape "$SIM_HOSTS_PREFIX$i" eth0 "$rate" && _sim_hosts_shape "${SIM_HOSTS_PREFIX}sw" "p$i" "$rate" || return 1
  done
  SIM_HOSTS_RATE=$rate
  echo "$rate" >"$state/rate"
}

# _sim_hosts_fg CMD...: CMD in the background, waited for: bash runs a trap for TERM (or INT) only
# after the foreground command ends, but interrupts a `wait` at once, so a signal tears the hosts
# down while mpirun still runs. Stdin stays the caller's; the lock fd is not passed on.
_sim_hosts_fg() {
  local pid rc=0
  if [[ -n ${SIM_HOSTS_LOCK_FD:-} ]]; then "$@" <&0 {SIM_HOSTS_LOCK_FD}>&- & else "$@" <&0 & fi
  pid=$!
  wait "$pid" || rc=$?
  return "$rc"
}

# sim_hosts_exec HOST CMD...: CMD on HOST (index, name or address) with that host's hostname,
# network and /etc/hosts; the rest of the machine (files, processes) is shared.
sim_hosts_exec() {
  local ns
  _sim_hosts_need_root || return
  ns=$(_sim_hosts_ns "${1:?sim_hosts_exec HOST CMD...}") || return
  shift
  # shellcheck disable=SC2016  # $0 and $@ are the inner shell's
  _sim_hosts_fg ip netns exec "$ns" unshare --uts -- /bin/sh -c 'hostname "$0" && exec "$@"' "$ns" "$@"
}

# sim_hosts_mca: sets the array SIM_HOSTS_MCA to the mpirun options the simulated hosts need (the
# MCA settings in the header): what a launcher is given after its `--` (scripts/launch.sh).
sim_hosts_mca() {
  SIM_HOSTS_MCA=(--mca plm rsh --mca plm_rsh_agent "$SIM_HOSTS_SELF agent" --mca plm_rsh_no_tree_spawn 1
    --mca orte_leave_session_attached 1 --mca oob_tcp_if_include "$SIM_HOSTS_SUBNET"
    --mca pml ob1 --mca btl "${SIM_HOSTS_BTL:-tcp,vader,self}" --mca btl_tcp_if_include "$SIM_HOSTS_SUBNET")
}

# sim_hosts_run_on0 CMD...: CMD on host 0 with what mpirun there needs in its environment (root's
# permission, a shell for the agent, this set of hosts).
sim_hosts_run_on0() {
  sim_hosts_exec 0 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SHELL=/bin/sh SIM_HOSTS_PREFIX="$SIM_HOSTS_PREFIX" "$@"
}

# sim_hosts_hostfile: the path of the hostfile of all hosts.
sim_hosts_hostfile() { echo "$(_sim_hosts_state)/hostfile"; }

# sim_hosts_mpirun ARGS...: mpirun on host 0 with the hostfile of all hosts; ARGS as for mpirun
# (e.g. -np 4 --map-by ppr:2:node prog). The MCA settings are in the header.
sim_hosts_mpirun() {
  _sim_hosts_need_root || return
  [[ -s $(sim_hosts_hostfile) ]] || { _sim_hosts_err "no simulated hosts (sim_hosts_up first)"; return 1; }
  sim_hosts_mca
  sim_hosts_run_on0 mpirun --hostfile "$(sim_hosts_hostfile)" "${SIM_HOSTS_MCA[@]}" "$@"
}

# sim_hosts_measure_mbit FROM TO [MB]: plain TCP throughput FROM -> TO in Mbit/s (python3), timed
# at the receiver from the first byte to the last, so connection set-up is not counted.
sim_hosts_measure_mbit() {
  local from=${1:?FROM} to=${2:?TO} mb=${3:-20} to_ns addr port=47111 py rc
  _sim_hosts_need_root || return
  to_ns=$(_sim_hosts_ns "$to") || return
  _sim_hosts_ns "$from" >/dev/null || return
  addr=198.18.0.$((${to_ns#"$SIM_HOSTS_PREFIX"} + 1))
  py=$(command -v /usr/bin/python3 || command -v python3) || { _sim_hosts_err "python3 not found"; return 1; }
  # shellcheck disable=SC2016
  sim_hosts_exec "$to" "$py" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(30)
c, _ = s.accept(); n = 0; t0 = None
while True:
    b = c.recv(1 << 20)
    if not b: break
    if t0 is None: t0 = time.monotonic()
    n += len(b)
print("%.1f" % (n * 8 / (time.monotonic() - t0) / 1e6))' "$addr" "$port" &
  local receiver=$!
  sim_hosts_exec "$from" "$py" -c '
import socket, sys, time
for _ in range(100):
    try: s = socket.create_connection((sys.argv[1], int(sys.argv[2]))); break
    except OSError: time.sleep(0.05)
buf = bytes(1 << 20)
for _ in range(int(sys.argv[3])): s.sendall(buf)
s.close()' "$addr" "$port" "$mb"
  rc=$?
  wait "$receiver" || rc=1
  return $rc
}

# sim_hosts_down: removes the hosts (processes in them, namespaces, /etc/netns entries) and the lock.
sim_hosts_down() {
  _sim_hosts_remove_all
  SIM_HOSTS_N=0
  _sim_hosts_unlock
}

# ---- as a command -------------------------------------------------------------------------------
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -uo pipefail
  cmd=${1:-}; shift || true
  case $cmd in
    agent)  # HOST COMMAND...: what mpirun's rsh launcher calls (an ssh stand-in)
      host=${1:?agent HOST COMMAND}; shift
      ns=$(_sim_hosts_ns "$host") || exit 255  # 255: what ssh returns when it cannot connect
      # shellcheck disable=SC2016
      ip netns exec "$ns" unshare --uts -- /bin/sh -c 'hostname "$0" && exec /bin/sh -c "$1"' "$ns" "$*" &
      child=$!
      trap 'kill "$child" 2>/dev/null' TERM INT HUP
      # ssh -o ServerAliveInterval=1 -o ServerAliveCountMax=3: from mpirun's host, a TCP probe to
      # HOST each second (a refused connection is an answer); three unanswered in a row end the
      # "session" with 255, as ssh ends when its connection is lost, so mpirun learns that the
      # host is gone instead of waiting on it forever.
      addr=198.18.0.$((${ns#"$SIM_HOSTS_PREFIX"} + 1)) misses=0
      while kill -0 "$child" 2>/dev/null; do
        sleep 1 & wait $!
        timeout 1 bash -c ": </dev/tcp/$addr/9" 2>/dev/null
        if (($? == 124)); then misses=$((misses + 1)); else misses=0; fi
        if ((misses >= ${SIM_HOSTS_ALIVE_COUNT:-3})); then
          echo "sim_hosts agent: connection to $ns lost (no answer for $misses s)" >&2
          kill -KILL "$child" 2>/dev/null
          exit 255
        fi
      done
      wait "$child" ;;
    with)
      [[ ${3:-} == -- ]] || { echo "usage: $0 with N RATE -- CMD..." >&2; exit 1; }
      n=$1 rate=$2; shift 3
      sim_hosts_up "$n" "$rate" || exit
      _sim_hosts_fg "$@" ;;
    up)
      SIM_HOSTS_NO_TRAP=1 sim_hosts_up "$@" || exit
      _sim_hosts_unlock
      echo "sim_hosts: $(cat "$(_sim_hosts_state)/n") hosts up at ${2:-off}; hostfile $(_sim_hosts_state)/hostfile" ;;
    down)    _sim_hosts_preflight || exit; _sim_hosts_lock || exit; sim_hosts_down ;;
    mpirun)  sim_hosts_mpirun "$@" ;;
    exec)    sim_hosts_exec "$@" ;;
    rate)    sim_hosts_set_rate "$@" ;;
    measure) sim_hosts_measure_mbit "$@" ;;
    *) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" | head -20 >&2; exit 1 ;;
  esac
fi
