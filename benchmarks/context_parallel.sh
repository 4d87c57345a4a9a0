#!/usr/bin/env bash
# Context parallelism's memory: per-rank peak memory at T = SEQ (default 8192) for cp 1, 2 and 4, as
# the engine's allocation accounting measures it in step 1 (the training log's memory line, rank 0)
# and as `llamatron plan --layout 1,1,1,CP` plans it, on a small model (4 layers, dim 256) on CPU
# ranks, with packed documents (`data.reset_attention_mask`; synthetic token 7 ends one). Also the
# step time of each. A benchmark, not a test: the planner's agreement with the accounting is tested by
# ContextParallel.PlannerMemoryMatchesEachRanksAccounting, the training by Layouts/ContextParallel.*.
#
# Usage: benchmarks/context_parallel.sh [SEQ]      OMP_NUM_THREADS=N (default: 2 / cp per rank)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
seq=${1:-8192}
cat >"$cfg" <<YAML
model: {vocab_size: 256, dim: 256, n_layers: 4, n_heads: 4, n_kv_heads: 2, ffn_dim: 512, max_seq_len: $seq}
data: {source: synthetic, eod_id: 7, reset_attention_mask: true}
train: {steps: 2, micro_batch_size: 1, seq_length: $seq, global_batch_size: 1, threads: 1}
logging: {progress: never, log_every: 1}
YAML
echo "context parallelism at T = $seq (model: 4 layers, dim 256, bf16; CPU ranks, $(nproc) CPUs):"
printf '  %-3s  %-58s  %s\n' cp "memory of rank 0, MiB (engine's accounting, peak in step 1 | planned)" "step 2 ms"
for cp in 1 2 4; do
  OMP_NUM_THREADS=1 mpirun "${root[@]}" --oversubscribe -np "$cp" build/llamatron train "$cfg" --set parallel.context_parallel=$cp \
    >"$work/cp$cp.out" 2>&1 || { tail -3 "$work/cp$cp.out"; exit 1; }
  measured=$(sed -n 's/.*memory (rank 0, MiB, peak in step 1): .*| total \([0-9.]*\).*/\1/p' "$work/cp$cp.out" | head -1)
  build/llamatron plan "$cfg" --gpus "$cp" --layout 1,1,1,$cp >"$work/plan$cp.out" 2>&1 || { tail -3 "$work/plan$cp.out"; exit 1; }
  planned=$(sed -n 's/.*memory (fullest rank, MiB, planned): .*| total \([0-9.]*\)$/\1/p' "$work/plan$cp.out")
  step_ms=$(sed -n 's/.*| \([0-9.]*\) ms (exposed comm.*/\1/p' "$work/cp$cp.out" | tail -1)
  printf '  %-3s  %10s | %-46s  %s\n' "$cp" "$measured" "$planned" "${step_ms:-?}"
done
