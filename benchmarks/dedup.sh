#!/usr/bin/env bash
# `llamatron data dedup` and `data filter` throughput, and dedup against datasketch (MinHash +
# MinHashLSH, PyPI) on the same corpus, the same parameters (5-word shingles, 128 permutations,
# threshold 0.8 -> 9 bands x 13 rows) and the same number of workers (THREADS, default 2: datasketch's
# signatures in a process pool of that size, llamatron's in that many OpenMP threads). The sides run
# alternately REPEATS times (default 3) so that drift in the machine's speed hits both; it prints
# every run (docs/s, MB/s, peak memory) and the median ratio. A benchmark, not a test: the agreement
# is checked by CTest text_pipeline (tests/tools/dedup_ref.py).
#
# Usage: benchmarks/dedup.sh [DOCS (default 20000)]      THREADS=N: workers; REPEATS=N: rounds
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
docs=${1:-20000}
threads=${THREADS:-2}
repeats=${REPEATS:-3}
source tests/e2e/lib.sh
PY=$(tools_venv "$work" datasketch) || { echo "dedup.sh: cannot install datasketch from PyPI: $(tail -3 "$work/pip.out")" >&2; exit 1; }
"$PY" benchmarks/dedup_datasketch.py make "$docs" "$work/corpus.jsonl"
mb=$(echo "$(stat -c %s "$work/corpus.jsonl") / 1000000" | bc -l)
printf 'corpus: %d documents, %.0f MB (families of near duplicates, as in tests/tools/dedup_ref.py), %d workers\n' "$docs" "$mb" "$threads"

secs=0
measure() {  # NAME CMD...: runs CMD, prints its line; secs = its wall time
  local name=$1 kib
  shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>&1 || { cat "$work/out"; exit 1; }
  read -r secs kib <"$work/time"
  printf '  %-24s %7.2f s %9.0f docs/s %7.1f MB/s %7.0f MiB peak\n' "$name" "$secs" "$(echo "$docs / $secs" | bc -l)" \
    "$(echo "$mb / $secs" | bc -l)" "$(echo "$kib / 1024" | bc -l)"
}
export OMP_NUM_THREADS=$threads
ratios=()
for ((i = 1; i <= repeats; i++)); do
  echo "round $i"
  rm -rf "$work/f" "$work/d"
  measure "llamatron data filter" build/llamatron data filter "$work/corpus.jsonl" --out "$work/f" --min-words 1
  measure "llamatron data dedup" build/llamatron data dedup "$work/corpus.jsonl" --out "$work/d"
  ours=$secs
  kept=$(grep -o '"kept_documents": [0-9]*' "$work/d/report.json" | grep -o '[0-9]*$')
  measure "datasketch" "$PY" benchmarks/dedup_datasketch.py run "$work/corpus.jsonl" "$threads"
  echo "  kept: llamatron $kept, datasketch $(tail -1 "$work/out")"
  ratios+=("$(echo "$secs / $ours" | bc -l)")
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
printf 'dedup throughput, llamatron / datasketch (%d workers each): median %.1fx over %d rounds (%s)\n' "$threads" "$median" "$repeats" \
  "$(printf '%.1f ' "${ratios[@]}" | sed 's/ $//')"
