#!/usr/bin/env bash
# Static quality of every kernel: builds kernels/*.cu for sm_80 and sm_90 with ptxas -v and prints
# one row per kernel (arch, registers, shared memory, spill bytes, stack frame, the most threads a
# block may have). Fails on any spill or local-memory stack frame, and on a kernel whose registers
# do not fit its largest block: a GPU refuses that launch ("too many resources requested"), which
# no emulator can see. Without __launch_bounds__ a block may have 1024 threads. CTest: ptxas_no_spills.
set -euo pipefail
nvcc=${1:-nvcc}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
table=$work/table
# One kernel file for one arch: appends its rows to $work/rows.<file>.<arch>.
build_one() {
  local src=$1 arch=$2 keep=$work/keep.$(basename "$1").$2
  mkdir -p "$keep"
  # The object build the project does, keeping its PTX (for the launch bounds).
  local log ptx
  log=$("$nvcc" -std=c++20 -arch=sm_$arch -I "$root" -c "$src" -o /dev/null -Xptxas -v --keep --keep-dir "$keep" 2>&1)
  ptx=$(ls "$keep"/*.ptx)
  # The block-size bound of each entry: .maxntid x, y, z (from __launch_bounds__), else 1024.
  awk '/\.entry/ { match($0, /\.entry [^(]+/); name = substr($0, RSTART + 7, RLENGTH - 7); threads[name] = 1024 }
       /\.maxntid/ { gsub(/[.a-z,]/, " "); n = 1; for (i = 1; i <= NF; ++i) n *= $i; threads[name] = n }
       END { for (k in threads) print k, threads[k] }' "$ptx" >"$keep/threads"
  echo "$log" |
    awk -v file="$(basename "$src")" -v threads_file="$keep/threads" '
      BEGIN { while ((getline line < threads_file) > 0) { split(line, f, " "); threads[f[1]] = f[2] } }
      /Compiling entry function/ { match($0, /function .[^'"'"']*/); name = substr($0, RSTART + 10, RLENGTH - 10);
                                   match($0, /sm_[0-9]+/); arch = substr($0, RSTART, RLENGTH) }
      /bytes stack frame/ { stack = $1; spill_st = $5; spill_ld = $9 }
      /Used [0-9]+ registers/ { match($0, /Used [0-9]+/); regs = substr($0, RSTART + 5, RLENGTH - 5);
                                smem = 0; if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11);
                                print file, arch, regs, smem, spill_st, spill_ld, stack, threads[name], name }' \
      >"$work/rows.$(basename "$src").$arch"
}
# nvcc is single-threaded: two builds at a time use both cores (LLAMATRON_JOBS overrides).
jobs=${LLAMATRON_JOBS:-2}
pids=()
for src in "$root"/kernels/*.cu; do
  for arch in 80 90; do
    build_one "$src" "$arch" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  done
done
for pid in "${pids[@]}"; do wait "$pid"; done
cat "$work"/rows.* >"$table" 2>/dev/null || true
[ -s "$table" ] || { echo "no kernels were compiled"; exit 1; }
# Registers are allocated per warp in units of 256, from the 16384 of the SM sub-partition (one of
# four) the warp is placed on; a block's warps spread over the four, so its warp count rounds up to 4.
fits='function fits(regs, threads) { return int((threads + 127) / 128) * 4 * int((regs * 32 + 255) / 256) * 256 <= 65536 }'
printf '%-18s %-6s %5s %6s %6s %6s %6s %7s  %s\n' file arch regs smem spillS spillL stack threads kernel
while read -r file arch regs smem st ld stack threads name; do
  printf '%-18s %-6s %5s %6s %6s %6s %6s %7s  %s\n' "$file" "$arch" "$regs" "$smem" "$st" "$ld" "$stack" "$threads" \
    "$(echo "$name" | c++filt | sed -E 's/\(anonymous namespace\):://; s/\(.*//; s/^(void )?llamatron::kernels:://')"
done <"$table"
bad=$(awk '$5 != 0 || $6 != 0 || $7 != 0' "$table" | wc -l)
unfit=$(awk "$fits"' !fits($3, $8) { print $1, $2, $3 " registers x " $8 " threads" }' "$table")
echo "$(wc -l <"$table") kernel builds, $bad with spills or a stack frame, $(echo -n "$unfit" | grep -c . || true) whose registers do not fit their largest block"
[ -z "$unfit" ] || echo "$unfit" | sed 's/^/  too many registers: /; s/$/ (add __launch_bounds__ or launch fewer threads)/'
[ "$bad" -eq 0 ] && [ -z "$unfit" ]
