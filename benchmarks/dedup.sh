#!/usr/bin/env bash
# `llamatron data dedup` and `data filter` throughput, and dedup against datasketch (MinHash +
# MinHashLSH, PyPI) on the same corpus, the same parameters (5-word shingles, 128 permutations,
# threshold 0.8 -> 9 bands x 13 rows) and the same number of workers (THREADS, default 2: datasketch's
# signatures in a process pool of that size, llamatron's in that many OpenMP threads). Prints docs/s,
# MB/s, peak memory and the ratio. A benchmark, not a test: the agreement is checked by CTest
# text_pipeline (tests/tools/dedup_ref.py).
#
# Usage: benchmarks/dedup.sh [DOCS (default 20000)]      THREADS=N to change the workers
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
docs=${1:-20000}
threads=${THREADS:-2}
source tests/e2e/lib.sh
PY=$(tools_venv "$work" datasketch) || { echo "dedup.sh: cannot install datasketch from PyPI: $(tail -3 "$work/pip.out")" >&2; exit 1; }
"$PY" benchmarks/dedup_datasketch.py make "$docs" "$work/corpus.jsonl"
mb=$(du -m "$work/corpus.jsonl" | cut -f1)
echo "corpus: $docs documents, $mb MB (families of near duplicates, as in tests/tools/dedup_ref.py)"

measure() {  # NAME CMD...: seconds and peak RSS (KiB) of CMD
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/time.$name" "$@" >"$work/out.$name" 2>&1 || { cat "$work/out.$name"; exit 1; }
  read -r secs kib <"$work/time.$name"
  printf '%-26s %7.2f s %9.0f docs/s %7.1f MB/s %7.0f MiB peak\n' "$name" "$secs" "$(echo "$docs / $secs" | bc -l)" \
    "$(echo "$mb / $secs" | bc -l)" "$(echo "$kib / 1024" | bc -l)"
}
export OMP_NUM_THREADS=$threads
measure "llamatron data filter" build/llamatron data filter "$work/corpus.jsonl" --out "$work/f" --min-words 1
measure "llamatron data dedup" build/llamatron data dedup "$work/corpus.jsonl" --out "$work/d"
measure "datasketch" "$PY" benchmarks/dedup_datasketch.py run "$work/corpus.jsonl" "$threads"
ours=$(cut -d' ' -f1 "$work/time.llamatron data dedup")
theirs=$(cut -d' ' -f1 "$work/time.datasketch")
echo "kept: llamatron $(grep -o '"kept_documents": [0-9]*' "$work/d/report.json" | grep -o '[0-9]*$'), datasketch $(tail -1 "$work/out.datasketch")"
printf 'dedup throughput, llamatron / datasketch (%d workers each): %.1fx\n' "$threads" "$(echo "$theirs / $ours" | bc -l)"
