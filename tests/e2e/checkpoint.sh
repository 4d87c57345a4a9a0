#!/usr/bin/env bash
# Checkpoints from the command line: kill -9 at random moments of a run that saves every step never
# leaves `latest` pointing at a broken checkpoint; SIGTERM finishes the step, saves and exits 0;
# a resumed run continues from the saved step; export-hf and import-hf work on the result.
#
# Usage: checkpoint.sh PATH_TO_llamatron WORKDIR      (CTest: checkpoint_cli)
set -u
BIN=$1
rm -rf "$2" && mkdir -p "$2" || exit 2
W=$(cd "$2" && pwd)
PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1: $2"; }
export OMP_NUM_THREADS=2

cat >"$W/run.yaml" <<YAML
model: {vocab_size: 256, dim: 256, n_layers: 4, n_heads: 4, n_kv_heads: 2, ffn_dim: 512, max_seq_len: 64}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 0}
train: {steps: 100000, micro_batch_size: 2, seq_length: 32, threads: 2}
logging: {log_every: 1}
checkpoint: {dir: $W/ckpt, every: 1, keep_last: 2}
YAML

# ---- kill -9 during saves ----------------------------------------------------------------------
checked=0
for delay in 0.05 0.15 0.25 0.35 0.45 0.6 0.8; do  # after the first logged step: inside steps and saves
  "$BIN" train "$W/run.yaml" >"$W/kill.out" 2>&1 &
  pid=$!
  for _ in $(seq 600); do grep -q '\] step ' "$W/kill.out" && break; sleep 0.1; done
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  [ -f "$W/ckpt/latest" ] || continue
  latest=$W/ckpt/$(cat "$W/ckpt/latest")
  if "$BIN" export-hf "$W/ckpt" "$W/probe" --dtype fp32 >"$W/probe.out" 2>&1; then
    checked=$((checked + 1))
  else
    fail "after kill -9 at ${delay}s, latest ($latest) loads" "$(cat "$W/probe.out")"
  fi
done
if (( checked >= 4 )); then pass "after kill -9 at $checked random moments, latest always loaded (manifest, checksums, every tensor)"
else fail "kill -9 checks" "only $checked runs got as far as a checkpoint"; fi

# ---- SIGTERM: finish the step, save, exit 0; then resume --------------------------------------------
rm -rf "$W/ckpt"
"$BIN" train "$W/run.yaml" --set checkpoint.every=0 >"$W/term.out" 2>&1 &
pid=$!
sleep 2.5
# No thread may run a handler for them (oneDNN's JIT GEMMs point rsp into the heap, where a signal
# frame would land): no thread catches SIGINT or SIGTERM (SigCgt bits 1 and 14), and every thread
# blocks them (SigBlk) but the one waiting for them in sigwait (which unblocks them while it waits).
unsafe="" waiting=0
for t in /proc/"$pid"/task/*; do
  blk=$(awk '/^SigBlk/ {print $2}' "$t/status") cgt=$(awk '/^SigCgt/ {print $2}' "$t/status")
  if (( (0x$blk & 0x4002) != 0x4002 )) && grep -q sigtimedwait "$t/wchan"; then waiting=$((waiting + 1)); continue; fi
  (( (0x$blk & 0x4002) == 0x4002 && (0x$cgt & 0x4002) == 0 )) || unsafe+=" thread ${t##*/}: SigBlk=$blk SigCgt=$cgt"
done
threads=$(ls /proc/"$pid"/task | wc -l)
if [ -z "$unsafe" ] && (( waiting == 1 && threads > 2 )); then pass "SIGTERM / SIGINT: blocked in all $threads threads, taken by one sigwait, never by a handler"
else fail "stop signals reach a thread's handler" "$threads threads, $waiting in sigwait:$unsafe"; fi
kill -TERM "$pid"
wait "$pid"
rc=$?
stopped=$(grep -o 'stopped by signal 15 after step [0-9]*' "$W/term.out" | grep -o '[0-9]*$')
if (( rc == 0 )) && [ -n "$stopped" ] && [ "$(cat "$W/ckpt/latest")" = "$(printf 'step_%08d' "$stopped")" ]; then
  pass "SIGTERM: the step finishes, step $stopped is saved, exit 0"
else
  fail "SIGTERM" "exit $rc; $(tail -3 "$W/term.out")"
fi
"$BIN" train "$W/run.yaml" --set checkpoint.every=0 --set train.steps=$((stopped + 2)) >"$W/resume.out" 2>&1
if grep -q "resumed from .* at step $stopped" "$W/resume.out" && grep -q "step *$((stopped + 2))/" "$W/resume.out" &&
   [ "$(grep -c '\] step ' "$W/resume.out")" -eq 2 ]; then
  pass "a resumed run continues from step $stopped and trains the 2 remaining steps"
else
  fail "resume" "$(tail -4 "$W/resume.out")"
fi

# ---- export-hf / import-hf ----------------------------------------------------------------------
"$BIN" export-hf "$W/ckpt" "$W/hf" >"$W/export.out" 2>&1
if grep -q '"model_type": "llama"' "$W/hf/config.json" && [ -s "$W/hf/model.safetensors" ]; then pass "export-hf writes config.json and model.safetensors"
else fail "export-hf" "$(cat "$W/export.out")"; fi
"$BIN" import-hf "$W/hf" "$W/imported" >"$W/import.out" 2>&1
if [ "$(cat "$W/imported/latest" 2>/dev/null)" = "step_00000000" ]; then pass "import-hf writes a step-0 checkpoint"
else fail "import-hf" "$(cat "$W/import.out")"; fi
"$BIN" export-hf "$W/ckpt/nothing_here" "$W/x" >"$W/err.out" 2>&1
rc=$?
if (( rc == 1 )) && grep -q "llamatron: error: checkpoint .*nothing_here does not exist" "$W/err.out"; then pass "a missing checkpoint is a one-line error"
else fail "missing checkpoint" "exit $rc: $(cat "$W/err.out")"; fi

echo "$PASSED passed, $FAILED failed"
(( FAILED == 0 ))
