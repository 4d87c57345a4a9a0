#!/usr/bin/env bash
# CPU training throughput: llamatron vs PyTorch eager (Debian's python3-torch) on the same LLaMA
# shape, same thread count, both in bf16. Prints both lines and the ratio. Builds first if needed.
# Extra arguments go to both sides (e.g. --steps 10).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/benchmarks/bench_train_throughput ] || scripts/build.sh >/dev/null
threads=${THREADS:-2}
ours=$(OMP_NUM_THREADS=$threads build/benchmarks/bench_train_throughput --threads "$threads" "$@")
theirs=$(OMP_NUM_THREADS=$threads /usr/bin/python3 benchmarks/torch_train.py --threads "$threads" "$@")
echo "$ours"
echo "$theirs"
rate() { grep -o 'tokens_per_s=[0-9.]*' <<<"$1" | tail -1 | cut -d= -f2; }
awk -v a="$(rate "$ours")" -v b="$(rate "$theirs")" 'BEGIN { printf "ratio llamatron/torch = %.2fx\n", a / b }'
