#!/usr/bin/env bash
# The gradient noise scale (logging.gns) against a direct computation from per-sample gradients
# (tests/tools/gns_reference.py, PyTorch float64): tp 2 x dp 2 under mpirun, fp32, 2 micro-batches
# per step, on an llm.c shard in file order. Step 1 is saved; the run resumed from it logs step 2,
# whose |G_rank|^2, |G_global|^2 and B_simple (the EMA restarts at a resume, so one step's ratio)
# must equal the reference's from the Hugging Face export of step 1's weights and step 2's samples.
# Also: one error line for logging.gns on one data-parallel rank; GNS in the step line and plot.
#
# Usage: noise_scale.sh PATH_TO_llamatron MPIEXEC WORKDIR      (CTest: noise_scale)
set -u
BIN=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
mpi_workdir "$3"

# 4096 tokens below 64 in an llm.c shard (header: magic, version 1, token count; uint16 ids): a
# chain with 2 successors per token, so that the mean gradient stands out of the per-sample noise
# (on uniform random tokens |G|^2's estimate is negative at this batch, and B_simple undefined).
/usr/bin/python3 -c '
import numpy as np, sys
h = np.zeros(256, "<i4"); h[:3] = (20240520, 1, 4096)
step = np.random.default_rng(5).integers(1, 3, 4096)
t = (np.cumsum(step) * 5 % 64).astype("<u2")
open(sys.argv[1], "wb").write(h.tobytes() + t.tobytes())' "$W/train.bin"
cat >"$W/base.yaml" <<YAML
model: {vocab_size: 64, dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64, max_seq_len: 16}
optimizer: {lr: 3.0e-3}
schedule: {warmup_steps: 0}
data: {source: llmc, paths: ["$W/train.bin"], shuffle: false}
parallel: {tensor_parallel: 2}
train: {steps: 2, micro_batch_size: 2, grad_accum_steps: 2, seq_length: 16, precision: fp32, threads: 1}
logging: {progress: never, log_every: 1, gns: true, metrics_file: "$W/metrics.jsonl"}
checkpoint: {dir: "$W/ck"}
YAML
timeout 300 "$MPIEXEC" -np 4 --oversubscribe "$BIN" train "$W/base.yaml" --set train.steps=1 >"$W/first.out" 2>&1
check "tp 2 x dp 2 with logging.gns trains step 1" "[[ $? == 0 ]]" "$(tail -3 "$W/first.out")"
timeout 300 "$MPIEXEC" -np 4 --oversubscribe "$BIN" train "$W/base.yaml" >"$W/second.out" 2>&1
check "resumed, it trains step 2 with gns in the step line" "[[ $? == 0 ]] && grep -q 'step     2/2 .*| gns [0-9.]' '$W/second.out'" "$(tail -3 "$W/second.out")"
"$BIN" export-hf "$W/ck/step_00000001" "$W/hf1" --dtype fp32 >"$W/export.out" 2>&1
check "step 1's weights exported (fp32)" "[[ $? == 0 ]]" "$(cat "$W/export.out")"
# Step 2 trains samples [8, 16): 2 micro-batches x 2 DP ranks x 2 sequences.
/usr/bin/python3 "$HERE/../tools/gns_reference.py" "$W/hf1" "$W/train.bin" --seq 16 --micro 2 --accum 2 --dp 2 --first 8 \
  >"$W/ref.json" 2>"$W/ref.err"
check "the PyTorch reference ran" "[[ $? == 0 ]]" "$(tail -3 "$W/ref.err")"
# fp32 against float64: gradients agree to ~1e-6 relative, squared norms to twice that; B_simple
# divides differences of them (|G_rank|^2 - |G_global|^2 is a third or more of either here), so 1e-4.
/usr/bin/python3 - "$W/metrics.jsonl" "$W/ref.json" >"$W/compare.out" 2>&1 <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ref = json.load(open(sys.argv[2]))
eng = [r for r in rows if r["step"] == 2][-1]
pairs = {"|G_rank|^2": (eng["gns_rank_grad_sq"], ref["small_sq"], 1e-5), "|G_global|^2": (eng["grad_norm"] ** 2, ref["big_sq"], 1e-5),
         "B_simple": (eng["gns"], ref["b_simple"], 1e-4)}
bad = False
for name, (e, r, tol) in pairs.items():
    rel = abs(e - r) / abs(r)
    print(f"{name}: engine {e:.9g}, reference {r:.9g}, relative {rel:.2e} (bound {tol:g})")
    bad |= not rel <= tol
assert 1.2 < ref["small_sq"] / ref["big_sq"], "the two norms must differ for the test to mean anything"
sys.exit(bad)
PY
check "step 2: |G_rank|^2, |G_global|^2 and B_simple equal the per-sample reference" "[[ $? == 0 ]]" "$(cat "$W/compare.out")"
cat "$W/compare.out"
/usr/bin/python3 "$HERE/../../tools/plot_metrics.py" "$W/metrics.jsonl" --out "$W/loss.png" >"$W/plot.out" 2>&1
check "plot_metrics.py draws the run with its GNS" "[[ $? == 0 ]] && [[ -s '$W/loss.png' ]] && grep -q 'gradient noise scale last [0-9]' '$W/plot.out'" \
  "$(cat "$W/plot.out")"

timeout 60 "$MPIEXEC" -np 2 --oversubscribe "$BIN" train "$W/base.yaml" --set checkpoint.dir= >"$W/one_dp.out" 2>&1
rc=$?
check "logging.gns on one data-parallel rank (tp 2): one error line" \
  "[[ $rc != 0 ]] && [[ \$(grep -c '^llamatron: error: ' '$W/one_dp.out') == 1 ]] && grep -q 'logging.gns needs at least 2 data-parallel ranks (here 1)' '$W/one_dp.out'" \
  "rc $rc: $(grep -v '^\[' "$W/one_dp.out" | head -3)"
finish
