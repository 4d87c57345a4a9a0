#!/usr/bin/env bash
# `llamatron data dedup` over 2 simulated hosts (scripts/sim_hosts.sh: network namespaces with their
# own hostnames, Open MPI over TCP between them), 4 ranks placed round-robin so that documents,
# buckets and signatures cross hosts: the shards, duplicates, pairs and report equal the
# one-process run's byte for byte. Then a bad line late in the corpus: one error line naming it,
# every rank non-zero, nothing in --out.
# Needs root (network namespaces): without it the test fails saying so.
#
# Usage: dedup.sh PATH_TO_llamatron WORKDIR      (CTest: multinode_dedup)
set -u
BIN=$(realpath "$1")
rm -rf "$2" && mkdir -p "$2" || exit 2
W=$(cd "$2" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
source "$SRC/tests/e2e/lib.sh"
export SIM_HOSTS_PREFIX=lt-dedup-  # this test's own hosts, whatever else runs
# shellcheck source=../../scripts/sim_hosts.sh
source "$SRC/scripts/sim_hosts.sh"
if [[ $(id -u) -ne 0 ]]; then
  fail "simulated hosts" "this test needs root (network and UTS namespaces, CAP_NET_ADMIN); run it as root"
  finish
fi
sim_hosts_up 2 off 2 || { fail "simulated hosts" "sim_hosts_up failed (see above)"; finish; }

# 6000 documents in families of near duplicates: two batches of 4096 and more pairs than ranks.
/usr/bin/python3 "$SRC/benchmarks/dedup_datasketch.py" make 6000 "$W/corpus.jsonl"
dedup() {  # OUT ARGS...
  local out=$1
  shift
  "$@" data dedup "$W/corpus.jsonl" --out "$W/$out" --write-duplicates --write-pairs --shard-bytes 2000000 >"$W/$out.out" 2>&1
}
dedup one "$BIN"
rc1=$?
dedup hosts sim_hosts_mpirun --timeout 120 -np 4 --map-by node --bind-to none -x OMP_NUM_THREADS=1 "$BIN"
rc=$?
same=1
for f in "$W"/one/data_*.jsonl "$W/one/duplicates.jsonl" "$W/one/pairs.tsv"; do cmp -s "$f" "$W/hosts/${f##*/}" || same=0; done
diff <(grep -v '"seconds"' "$W/one/report.json") <(grep -v '"seconds"' "$W/hosts/report.json") >/dev/null || same=0
if (( rc1 == 0 && rc == 0 && same )) && grep -q "(4 rank(s))" "$W/hosts.out" && [[ -f $W/one/data_000001.jsonl ]] &&
   grep -q '"near_duplicates_removed": [1-9]' "$W/one/report.json"; then
  pass "dedup on 4 ranks over 2 hosts = one process (shards, duplicates, pairs, report)"
else
  fail "dedup on 4 ranks over 2 hosts = one process" "exit $rc1 / $rc, same $same; $(tail -3 "$W/hosts.out")"
fi

{ cat "$W/corpus.jsonl"; echo '{"text": "broken'; } >"$W/late.jsonl"
sim_hosts_mpirun --timeout 120 -np 4 --map-by node --bind-to none -x OMP_NUM_THREADS=1 \
  "$BIN" data dedup "$W/late.jsonl" --out "$W/bad" >"$W/bad.out" 2>&1
rc=$?
if (( rc != 0 )) && [[ $(grep -c "late.jsonl:6001: not a JSON object" "$W/bad.out") -eq 1 ]] && [[ -z $(crash_sign "$W/bad.out") ]] &&
   [[ -z $(ls -A "$W/bad" 2>/dev/null) ]]; then
  pass "a bad line on 2 hosts: one error line naming file:line, non-zero exit, nothing in --out, no crash"
else
  fail "a bad line on 2 hosts" "exit $rc: $(head -c 400 "$W/bad.out")"
fi
finish
