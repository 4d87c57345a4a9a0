#!/usr/bin/env bash
# Every kernel compiles for sm_80 and sm_90 with zero register spills: runs ptxas -v on each
# kernels/*.cu and fails on any non-zero spill store or load. Used by CTest (ptxas_no_spills).
set -euo pipefail
nvcc=${1:-nvcc}
root=$(cd "$(dirname "$0")/.." && pwd)
failed=0 checked=0
for src in "$root"/kernels/*.cu; do
  for arch in 80 90; do
    report=$("$nvcc" -std=c++20 -arch=sm_$arch -I "$root" -c "$src" -o /dev/null -Xptxas -v 2>&1)
    spills=$(grep -E 'spill (stores|loads)' < <(echo "$report") | grep -vcE '0 bytes spill stores, 0 bytes spill loads' || true)
    functions=$(grep -c 'Compiling entry function' < <(echo "$report") || true)
    checked=$((checked + functions))
    if [ "$spills" -ne 0 ]; then
      echo "SPILLS in $(basename "$src") sm_$arch:"
      grep -B2 -E '[1-9][0-9]* bytes spill' < <(echo "$report") || true
      failed=1
    else
      echo "ok - $(basename "$src") sm_$arch: $functions kernel(s), no spills"
    fi
  done
done
[ "$checked" -gt 0 ] || { echo "no kernels were compiled"; exit 1; }
exit $failed
