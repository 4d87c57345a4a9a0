#!/usr/bin/env bash
# The pipeline bubble, measured (issue #20): pp 2 and pp 4 on as many MPI ranks of this machine, 8
# micro-batches of 4 x 256 tokens, 8 layers (C=512), plain 1F1B (v = 1) and interleaved (v = 2).
# (At C=256 and 128 tokens a chunk computes for about as long as a hand-over waits, and v = 2 ran
# no faster: the formula counts hand-overs as free.) From the step
# timeline (logging.trace_file) of steps 2-7: each rank's idle share of a step's pipeline section
# (from the first micro-batch's forward to the last backward, on any rank) is 1 - its forward and
# backward time / that window; printed as the mean over ranks, the median over the steps (and
# their range), next to the formula (p - 1) / (v M + p - 1), which assumes a backward costs twice
# a forward and hand-overs cost nothing.
# With fewer cores than ranks the ranks also wait for a core, which the formula does not know: the
# figures compare v = 1 with v = 2 on one machine, they are not a speed claim.
source "$(dirname "$0")/lib.sh"
cat >"$cfg" <<'YAML'
model: {vocab_size: 256, dim: 512, n_layers: 8, n_heads: 8, n_kv_heads: 2, ffn_dim: 1408, max_seq_len: 256}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 0}
train: {steps: 7, micro_batch_size: 4, seq_length: 256, threads: 1, grad_accum_steps: 8}
YAML
echo "this machine: $(nproc) CPU(s)"
for p in 2 4; do
for v in 1 2; do
  mpirun "${root[@]}" --oversubscribe -np $p build/llamatron train "$cfg" --set parallel.pipeline_parallel=$p \
    --set parallel.virtual_pipeline=$v --set logging.trace_file="$work/trace.json" --set logging.trace_steps=2,3,4,5,6,7 >"$work/out" 2>&1
  step=$(grep '\] step ' "$work/out" | tail -n +2 | grep -o '| [0-9.]* ms' | tr -d '| ms' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] " ms" }')
  /usr/bin/python3 - "$work/trace.json" "$p" "$v" "$step" <<'PY'
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
p, v, M = int(sys.argv[2]), int(sys.argv[3]), 8
spans = [e for e in events if e["ph"] == "X" and (e["name"].startswith("forward mb") or e["name"].startswith("backward mb"))]
shares = []
for step in sorted({e["args"]["step"] for e in spans}):
    mine = [e for e in spans if e["args"]["step"] == step]
    start, end = min(e["ts"] for e in mine), max(e["ts"] + e["dur"] for e in mine)
    shares.append(sum(1 - sum(e["dur"] for e in mine if e["pid"] == r) / (end - start) for r in range(p)) / p)
shares.sort()
formula = (p - 1) / (v * M + p - 1)
print(f"pp {p}, v = {v}: idle share {shares[len(shares) // 2]:.3f} (steps 2-7: {shares[0]:.3f}-{shares[-1]:.3f}) | "
      f"formula {formula:.3f} | median step {sys.argv[4]}")
PY
done
done
