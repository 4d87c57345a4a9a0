#!/usr/bin/env bash
# CPU training throughput: llamatron vs PyTorch eager (Debian's python3-torch) on the same LLaMA
# shape, same thread count, both in bf16. The two sides run alternately REPEATS times (default 3)
# so that drift in the machine's speed hits both; it prints every run and the median ratio.
# Extra arguments go to both sides (default: --steps 10). Builds first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/benchmarks/bench_train_throughput ] || scripts/build.sh >/dev/null
[ $# -gt 0 ] || set -- --steps 10
threads=${THREADS:-2}
repeats=${REPEATS:-3}
rate() { echo "$1" | grep -o "tokens_per_s=[0-9.]*" | tail -1 | cut -d= -f2; }
ratios=()
for ((i = 1; i <= repeats; i++)); do
  ours=$(OMP_NUM_THREADS=$threads build/benchmarks/bench_train_throughput --threads "$threads" "$@" | grep -v '^#')
  theirs=$(OMP_NUM_THREADS=$threads /usr/bin/python3 benchmarks/torch_train.py --threads "$threads" "$@" | grep -v '^#')
  ratio=$(awk -v a="$(rate "$ours")" -v b="$(rate "$theirs")" 'BEGIN { printf "%.2f", a / b }')
  ratios+=("$ratio")
  echo "run $i: $ours"
  echo "run $i: $theirs"
  echo "run $i: ratio ${ratio}x"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "median ratio llamatron/torch over $repeats runs = ${median}x (llamatron CPU bf16 vs PyTorch eager CPU bf16, $threads threads)"
