#!/usr/bin/env bash
# Runs one fuzz target from its seed corpus: a fixed number of inputs (CTest), or for a time (the
# long run of docs/formats.md). A crash, a sanitizer report, an input taking over 10 s (a hang) or
# an exception other than llamatron::Error fails it; the input is kept in WORKDIR.
#
# Usage: run_fuzz.sh TARGET_BINARY SEED_DIR WORKDIR RUNS        (RUNS: a count, or time:SECONDS)
set -u
if (( $# != 4 )); then
  echo "usage: $0 TARGET_BINARY SEED_DIR WORKDIR RUNS|time:SECONDS" >&2
  exit 2
fi
bin=$1 seeds=$2 work=$3 budget=$4
rm -rf "$work" && mkdir -p "$work/corpus" || exit 2
if [[ $budget == time:* ]]; then limit=(-max_total_time="${budget#time:}"); else limit=(-runs="$budget"); fi
# The corpus grows in WORKDIR (the first directory); the committed seeds are only read.
"$bin" "${limit[@]}" -seed=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/" \
  "$work/corpus" "$seeds" >"$work/log" 2>&1
rc=$?
grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs)|stat::number_of_executed_units' "$work/log" | tail -2
if (( rc != 0 )); then
  grep -E -A40 'ERROR|runtime error|round trip|terminate|timeout' "$work/log" | head -80
  echo "FAIL: $(basename "$bin"): the input that failed is in $work (crash-*, timeout-*, oom-*): $(ls "$work" | grep -E '^(crash|timeout|oom|leak)-' | head -3)"
fi
exit $rc
