#!/usr/bin/env bash
# Activation memory per rank of a tp 4 run with and without sequence parallelism (issue #20): one
# step on 4 MPI ranks of this machine (C=1024, L=4, T=2048, 4 sequences per micro-batch, bf16),
# the engine's own accounting (the "memory" line of rank 0, MiB) next to `llamatron plan --layout`
# for the same layout (its planned memory line: the fullest rank), and the ratio. The SP tensors
# are the residual stream and the norms; q/k/v, attention, gate/up and SwiGLU are split by TP
# either way, so the whole drops by less than 4. A memory figure, not a speed claim: the step times are of 4 ranks sharing this CPU.
source "$(dirname "$0")/lib.sh"
cat >"$cfg" <<'YAML'
model: {vocab_size: 8192, dim: 1024, n_layers: 4, n_heads: 16, n_kv_heads: 4, ffn_dim: 2816, max_seq_len: 2048}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 0}
train: {steps: 1, micro_batch_size: 4, seq_length: 2048, threads: 1}
YAML
declare -A engine plan
for sp in false true; do
  out=$(mpirun "${root[@]}" --oversubscribe -np 4 build/llamatron train "$cfg" --set parallel.tensor_parallel=4 \
    --set parallel.sequence_parallel=$sp 2>&1)
  engine[$sp]=$(echo "$out" | grep -o 'memory (rank 0.*' | grep -o 'activations [0-9.]*' | awk '{ print $2 }')
  plan[$sp]=$(build/llamatron plan "$cfg" --gpus 4 --layout 4,1,1 --set parallel.sequence_parallel=$sp |
    grep -o 'memory (fullest rank.*' | grep -o 'activations [0-9.]*' | awk '{ print $2 }')
  step=$(echo "$out" | grep '\] step ' | tail -1 | grep -o '[0-9.]* ms' | head -1)
  printf 'tp 4, sequence_parallel=%-5s: activations %8.1f MiB per rank (engine), %8.1f MiB (plan) | step %s\n' \
    "$sp" "${engine[$sp]}" "${plan[$sp]}" "$step"
done
awk -v a="${engine[false]}" -v b="${engine[true]}" -v pa="${plan[false]}" -v pb="${plan[true]}" 'BEGIN {
  printf "activations without / with SP: %.2f (engine), %.2f (plan)\n", a / b, pa / pb }'
