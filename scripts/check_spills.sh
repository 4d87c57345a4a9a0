#!/usr/bin/env bash
# Static quality of every kernel: builds kernels/*.cu for sm_80 and sm_90 with ptxas -v and prints
# one row per kernel (arch, registers, shared memory, spill bytes, stack frame). Fails on any
# spill or local-memory stack frame. Used by CTest (ptxas_no_spills).
set -euo pipefail
nvcc=${1:-nvcc}
root=$(cd "$(dirname "$0")/.." && pwd)
table=$(mktemp)
trap 'rm -f "$table"' EXIT
for src in "$root"/kernels/*.cu; do
  for arch in 80 90; do
    "$nvcc" -std=c++20 -arch=sm_$arch -I "$root" -c "$src" -o /dev/null -Xptxas -v 2>&1 |
      awk -v file="$(basename "$src")" '
        /Compiling entry function/ { match($0, /function .[^'"'"']*/); name = substr($0, RSTART + 10, RLENGTH - 10);
                                     match($0, /sm_[0-9]+/); arch = substr($0, RSTART, RLENGTH) }
        /bytes stack frame/ { stack = $1; spill_st = $5; spill_ld = $9 }
        /Used [0-9]+ registers/ { match($0, /Used [0-9]+/); regs = substr($0, RSTART + 5, RLENGTH - 5);
                                  smem = 0; if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11);
                                  print file, arch, regs, smem, spill_st, spill_ld, stack, name }' >>"$table"
  done
done
[ -s "$table" ] || { echo "no kernels were compiled"; exit 1; }
printf '%-18s %-6s %5s %6s %6s %6s %6s  %s\n' file arch regs smem spillS spillL stack kernel
while read -r file arch regs smem st ld stack name; do
  printf '%-18s %-6s %5s %6s %6s %6s %6s  %s\n' "$file" "$arch" "$regs" "$smem" "$st" "$ld" "$stack" \
    "$(echo "$name" | c++filt | sed -E 's/\(anonymous namespace\):://; s/\(.*//; s/^(void )?llamatron::kernels:://')"
done <"$table"
bad=$(awk '$5 != 0 || $6 != 0 || $7 != 0' "$table" | wc -l)
echo "$(wc -l <"$table") kernel builds, $bad with spills or a stack frame"
[ "$bad" -eq 0 ]
