#!/usr/bin/env bash
# CPU training throughput of every 3D layout of issue #6 on the #2 benchmark shape (V=8192, C=512,
# L=8, H=8, KV=2, F=1408; 8 x 256 tokens per step in total), 8 MPI ranks on this machine, and the
# bytes rank 0 sent per group in the last step, measured and analytic. On a machine with fewer
# cores than ranks the figures measure oversubscription more than the layout: they are for
# comparing layouts on one machine, not a speed claim. Builds first if needed.
source "$(dirname "$0")/lib.sh"
cat >"$cfg" <<'YAML'
model: {vocab_size: 8192, dim: 512, n_layers: 8, n_heads: 8, n_kv_heads: 2, ffn_dim: 1408, max_seq_len: 256}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 0}
train: {steps: ${STEPS:-4}, micro_batch_size: 1, seq_length: 256, threads: 1, global_batch_size: 8}
logging: {log_comm: true}
YAML
sed -i "s/\${STEPS:-4}/${STEPS:-4}/" "$cfg"
for layout in "1 1 1" "2 1 1" "1 2 1" "1 1 2" "2 2 2" "4 1 2" "1 4 2" "2 4 1" "8 1 1" "1 1 8"; do
  set -- $layout
  tp=$1 pp=$2 dp=$3
  n=$((tp * pp * dp))
  out=$(mpirun "${root[@]}" --oversubscribe -np "$n" build/llamatron train "$cfg" --set parallel.tensor_parallel="$tp" \
    --set parallel.pipeline_parallel="$pp" --set parallel.data_parallel="$dp" 2>&1)
  tok=$(echo "$out" | grep '\] step ' | tail -1 | grep -o '[0-9]* tok/s')
  comm=$(echo "$out" | grep '\] comm ' | tail -1 | sed 's/.*comm *[0-9]*\/[0-9]*//')
  printf 'tp %d pp %d dp %d (%d ranks): %s%s\n' "$tp" "$pp" "$dp" "$n" "$tok" "$comm"
done
