#!/usr/bin/env bash
# What a user touches every day, end to end through the CLI: config errors that name the nearest
# key, the resolved config (logged, saved, and reproducing the run when trained from), the progress
# bar on a terminal and plain lines otherwise, memory and recompute in the log, the metrics file
# and its plot, and `llamatron plan` on every shipped config (whose comments must quote its advice).
#
# Usage: trainer_ux.sh PATH_TO_llamatron WORKDIR SOURCE_DIR      (CTest: trainer_ux)
set -u
BIN=$1 W=$2 SRC=$3
rm -rf "$W" && mkdir -p "$W"
source "$SRC/tests/e2e/lib.sh"
one_line_error() {  # command..., expected text: exit 1, one stderr line containing the text
  local want=$1; shift
  "$@" >"$W/out" 2>"$W/err"
  local rc=$?
  [ $rc -eq 1 ] && [ "$(wc -l <"$W/err")" -eq 1 ] && grep -qF -- "$want" "$W/err"
}
losses() { grep ' step ' "$1" | grep -o 'loss [0-9.]*' | awk '{ print $2 }'; }

cat >"$W/cfg.yaml" <<YAML
model: {vocab_size: 64, dim: 32, n_layers: 2, n_heads: 2, n_kv_heads: 1, ffn_dim: 64, max_seq_len: 16}
optimizer: {lr: 3.0e-3}
schedule: {warmup_steps: 2, decay_style: cosine, min_lr: 3.0e-4}
train: {steps: 12, micro_batch_size: 4, seq_length: 16, seed: 3, threads: 1}
logging: {log_every: 1, metrics_file: $W/metrics.jsonl}
checkpoint: {dir: $W/ckpt}
YAML

# ---- config errors name the nearest valid key -----------------------------------------------------
check "a Megatron name gets its llamatron key" \
  'one_line_error "did you mean '"'"'train.micro_batch_size'"'"'?" "$BIN" train "$W/cfg.yaml" --set train.batch_size=2'
printf 'optim: {lr: 0.1}\n' >"$W/old.yaml"
check "a key in a renamed section gets the new section" \
  'one_line_error "did you mean '"'"'optimizer.lr'"'"'?" "$BIN" train "$W/old.yaml"'
check "a typo gets the key it missed" 'one_line_error "did you mean '"'"'train.seq_length'"'"'?" "$BIN" train "$W/cfg.yaml" --set train.seq_lenght=8'

# ---- a run: resolved config, memory, plain lines without a terminal ------------------------------
"$BIN" train "$W/cfg.yaml" >"$W/run1.out" 2>&1
check "the run succeeds and logs 12 steps" '[ "$(losses "$W/run1.out" | wc -l)" -eq 12 ]'
check "the resolved config is logged" 'grep -q "config (resolved):" "$W/run1.out" && grep -q "  micro_batch_size: 4" "$W/run1.out"'
check "the resolved config is saved in checkpoint.dir" '[ -f "$W/ckpt/run_config.yaml" ] && grep -q "data_parallel: 1" "$W/ckpt/run_config.yaml"'
check "the step line shows memory allocated/peak" 'grep " step " "$W/run1.out" | tail -1 | grep -Eq "mem [0-9.]+/[0-9.]+ MiB"'
check "after step 1 the memory breakdown is logged" 'grep -Eq "memory \(rank 0, MiB.*weights [0-9.]+ \| grads [0-9.]+ \| optimizer" "$W/run1.out"'
check "without a terminal: no progress bar" '! grep -q "ETA" "$W/run1.out"'
"$BIN" train "$W/ckpt/run_config.yaml" --set "checkpoint.dir=$W/ckpt2" --set "logging.metrics_file=" >"$W/run2.out" 2>&1
check "training from the saved resolved config gives the same losses" \
  '[ -n "$(losses "$W/run1.out")" ] && [ "$(losses "$W/run1.out")" = "$(losses "$W/run2.out")" ]'

# ---- recomputation: same losses, the saving logged -------------------------------------------------
"$BIN" train "$W/cfg.yaml" --set train.recompute=full --set "checkpoint.dir=" --set "logging.metrics_file=" >"$W/full.out" 2>&1
check "recompute full trains to the same losses" '[ "$(losses "$W/run1.out")" = "$(losses "$W/full.out")" ]'
check "recompute full logs what it saves" 'grep -Eq "recompute full: activations [0-9.]+ MiB instead of [0-9.]+ MiB, saves" "$W/full.out"'

# ---- a terminal gets the progress bar ------------------------------------------------------------
if command -v script >/dev/null; then
  script -qfec "$BIN train $W/cfg.yaml --set checkpoint.dir=$W/tty_ckpt --set checkpoint.every=4 --set logging.metrics_file=" \
    "$W/tty.log" >/dev/null 2>&1
  check "on a terminal: a progress bar with ETA" 'grep -a -q "12/12 100% | loss" "$W/tty.log" && grep -a -q "ETA" "$W/tty.log"'
  check "log lines (checkpoint saves too) wipe the bar first: none is glued to it" \
    'grep -a -q "checkpoint: saved" "$W/tty.log" && ! grep -a -q "ETA [0-9:?]*\[[0-9]" "$W/tty.log"'
else
  check "script(1) is available to test the terminal progress bar (bsdutils)" 'false'
fi
"$BIN" train "$W/cfg.yaml" --set checkpoint.dir= --set logging.metrics_file= --set logging.progress=always >"$W/always.out" 2>&1
check "logging.progress=always draws it without a terminal" 'grep -a -q "ETA" "$W/always.out"'

# ---- metrics file and plot -------------------------------------------------------------------------
check "metrics JSONL has one line per step" '[ "$(wc -l <"$W/metrics.jsonl")" -eq 12 ]'
/usr/bin/python3 "$SRC/tools/plot_metrics.py" "$W/metrics.jsonl" --out "$W/loss.png" >"$W/plot.out" 2>&1
check "plot_metrics.py draws the run to a PNG" '[ "$(head -c 8 "$W/loss.png" | od -An -tx1 | tr -d " ")" = "89504e470d0a1a0a" ]'

# ---- the planner on every shipped config; the configs quote its advice ----------------------------
for cfg in "$SRC"/configs/llama*.yaml; do
  name=$(basename "$cfg")
  for gpus in 8 64; do
    "$BIN" plan "$cfg" --gpus $gpus --gpu h100-80gb >"$W/plan.out" 2>&1
    rc=$?
    rec=$(grep -o "recommended: .*" "$W/plan.out")
    if [ -n "$rec" ]; then
      want=$(echo "$rec" | sed -E 's/.*tensor_parallel=([0-9]+) parallel.pipeline_parallel=([0-9]+) parallel.data_parallel=([0-9]+) parallel.virtual_pipeline=([0-9]+) parallel.sequence_parallel=([a-z]+) train.micro_batch_size=([0-9]+) train.recompute=([a-z]+)/tp \1, pp \2, dp \3, v \4, SP \5, micro-batch \6/' |
        sed -E -e 's/, v 1,/,/' -e 's/, v ([0-9]+),/, virtual pipeline \1,/' -e 's/, SP false//' -e 's/, SP true/, sequence parallel/')
      check "plan $name on $gpus x H100 recommends what the config's comment says ($want)" \
        '[ $rc -eq 0 ] && grep -q "^#   $gpus x H100: *$want" "$cfg"'
    else
      check "plan $name on $gpus x H100: nothing fits, exit 1, and the config says so" \
        '[ $rc -eq 1 ] && grep -q "none fits" "$W/plan.out" && grep -q "^#   $gpus x H100: *nothing fits" "$cfg"'
    fi
  done
done
check "plan with an unknown GPU names the known ones" 'one_line_error "use one of h100-80gb" "$BIN" plan "$W/cfg.yaml" --gpu h100'

finish
