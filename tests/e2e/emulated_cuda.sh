#!/usr/bin/env bash
# The CLI on the emulated CUDA device: `llamatron-emu train ... --set train.device=cuda` runs every
# kernel in the emulator; its losses must match the CPU backend's (`llamatron`) step by step within
# the bf16 bound of the model test ((12 * layers + 2) bf16 roundings: 26 * 2^-8 for tiny_synthetic.yaml).
# And `llamatron` itself, on a machine without a GPU, must refuse train.device=cuda in one line.
# scripts/gpu_check.sh passes the real `llamatron` as the second binary on a GPU machine: the real
# CUDA backend must match the CPU backend within the same bound. With MPIEXEC given: the emulated device under mpirun with tp 2 x pp 2 must match the single
# emulated process on the same global batch, within the same bound, and so must tp 2 with sequence
# parallelism x pp 2 with 2 chunks per stage (interleaved 1F1B), and context parallelism (cp 2, cp 4, cp 2 x tp 2).
set -u
cpu_bin=$1 emu_bin=$2 config=$3 mpiexec=${4-}
common=(--set train.steps=6 --set logging.log_every=1)
losses() { grep ' step ' | grep -o 'loss [0-9.]*' | awk '{ print $2 }'; }
cpu=$("$cpu_bin" train "$config" "${common[@]}" 2>&1 | losses)
emu=$("$emu_bin" train "$config" "${common[@]}" --set train.device=cuda 2>&1 | losses)
passed=0 failed=0
check() { if eval "$2"; then echo "ok - $1"; passed=$((passed + 1)); else echo "FAIL - $1"; failed=$((failed + 1)); fi; }
check "both runs logged 6 steps" '[ "$(echo "$cpu" | wc -l)" -eq 6 ] && [ "$(echo "$emu" | wc -l)" -eq 6 ]'
check "CUDA-device losses match the CPU backend within 26 * 2^-8" \
  'paste <(echo "$cpu") <(echo "$emu") | awk '"'"'{ d = $1 - $2; if (d < 0) d = -d; if (d > 26 / 256 * $1) bad = 1 } END { exit bad }'"'"''
if ! nvidia-smi >/dev/null 2>&1; then
  out=$("$cpu_bin" train "$config" --set train.device=cuda 2>&1 >/dev/null)
  rc=$?
  check "without a GPU, train.device=cuda is a one-line error with exit 1" '[ $rc -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "train.device=cuda"'
fi
if [ -n "$mpiexec" ]; then
  small=(--set train.steps=3 --set logging.log_every=1 --set train.device=cuda --set train.micro_batch_size=4 --set train.threads=1)
  one=$("$emu_bin" train "$config" "${small[@]}" 2>&1 | losses)
  grid=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 "$mpiexec" -np 4 --oversubscribe "$emu_bin" train \
    "$config" "${small[@]}" --set parallel.tensor_parallel=2 --set parallel.pipeline_parallel=2 2>&1 | losses)
  check "emulated CUDA under mpirun, tp 2 x pp 2, logged 3 steps" '[ "$(echo "$grid" | wc -l)" -eq 3 ]'
  check "emulated CUDA tp 2 x pp 2 matches one emulated process within 26 * 2^-8" \
    'paste <(echo "$one") <(echo "$grid") | awk '"'"'{ d = $1 - $2; if (d < 0) d = -d; if (d > 26 / 256 * $1) bad = 1 } END { exit bad }'"'"''
  echo "one process: $(echo $one) | tp2 x pp2: $(echo $grid)"
  # Sequence parallelism and interleaved 1F1B on the device: the chunk transposes run as kernels,
  # the gathers and reduce-scatters on the group's comm stream; 4 layers in 2 chunks per stage (2 micro-batches,
  # against one emulated process on the same global batch).
  accum=(--set train.grad_accum_steps=2 --set model.n_layers=4)
  one2=$("$emu_bin" train "$config" "${small[@]}" "${accum[@]}" 2>&1 | losses)
  seq=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 "$mpiexec" -np 4 --oversubscribe "$emu_bin" train \
    "$config" "${small[@]}" "${accum[@]}" --set parallel.tensor_parallel=2 --set parallel.pipeline_parallel=2 \
    --set parallel.sequence_parallel=true --set parallel.virtual_pipeline=2 2>&1 | losses)
  check "emulated CUDA tp 2 SP x pp 2 v 2 (interleaved) logged 3 steps and matches one emulated process within 26 * 2^-8" \
    '[ "$(echo "$seq" | wc -l)" -eq 3 ] && paste <(echo "$one2") <(echo "$seq") | awk '"'"'{ d = $1 - $2; if (d < 0) d = -d; if (d > 26 / 256 * $1) bad = 1 } END { exit bad }'"'"''
  echo "one process: $(echo $one2) | tp2 sp x pp2 v2: $(echo $seq)"
  # Context parallelism on the device: the ring's blocks through the flash kernels at their global
  # offsets, the merges and fp32 sums as kernels, K/V over the group; cp 2, cp 4 and cp 2 x tp 2
  # with packed documents, against one emulated process with the same documents.
  docs=(--set data.eod_id=7 --set data.reset_attention_mask=true --set data.reset_position_ids=true)
  one3=$("$emu_bin" train "$config" "${small[@]}" "${docs[@]}" 2>&1 | losses)
  for layout in 2,1 4,1 2,2; do  # cp,tp
    cp=${layout%,*} tp=${layout#*,}
    name="cp $cp$([ "$tp" -gt 1 ] && echo " x tp $tp")"
    cpl=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 "$mpiexec" -np $((cp * tp)) --oversubscribe "$emu_bin" train \
      "$config" "${small[@]}" "${docs[@]}" --set parallel.context_parallel=$cp --set parallel.tensor_parallel=$tp 2>&1 | losses)
    check "emulated CUDA $name (documents) logged 3 steps and matches one emulated process within 26 * 2^-8" \
      '[ "$(echo "$cpl" | wc -l)" -eq 3 ] && paste <(echo "$one3") <(echo "$cpl") | awk '"'"'{ d = $1 - $2; if (d < 0) d = -d; if (d > 26 / 256 * $1) bad = 1 } END { exit bad }'"'"''
    echo "one process: $(echo $one3) | $name: $(echo $cpl)"
  done
  # Overlap on and off on the emulated device (its NCCL stand-in poisons a collective's output
  # until the wait): pp 2 x dp 2 with 2 micro-batches, the losses in the metrics JSONL (every
  # digit) bit for bit, and none NaN.
  work=$(mktemp -d)
  for mode in on off; do
    flag=true; [ "$mode" = off ] && flag=false
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 "$mpiexec" -np 4 --oversubscribe "$emu_bin" train \
      "$config" "${small[@]}" --set parallel.pipeline_parallel=2 --set train.grad_accum_steps=2 --set parallel.bucket_size_mb=0.2 \
      --set parallel.overlap_grad_reduce=$flag --set parallel.overlap_param_gather=$flag \
      --set logging.metrics_file="$work/$mode.jsonl" --set logging.trace_file="$work/trace_$mode.json" --set logging.trace_steps=2 \
      >"$work/$mode.out" 2>&1
  done
  on=$(grep -o '"loss":[^,]*' "$work/on.jsonl" 2>/dev/null) off=$(grep -o '"loss":[^,]*' "$work/off.jsonl" 2>/dev/null)
  check "emulated CUDA pp 2 x dp 2: overlap on and off give bit-identical losses" \
    '[ "$(echo "$on" | wc -l)" -eq 3 ] && [ "$on" = "$off" ] && ! echo "$on" | grep -qi nan'
  echo "overlap on: $(echo $on) | off: $(echo $off)"
  # The trace of the device's streams: spans on "stream compute" and on a group's "stream comm N"
  # row (from the device's events), next to the host's rows; the whole file valid.
  check "the emulated device's trace validates and has compute and comm stream rows" \
    '/usr/bin/python3 "$(dirname "$0")/../tools/check_trace.py" "$work/trace_on.json" --ranks 4 >/dev/null &&
     /usr/bin/python3 -c "
import json, sys
ev = json.load(open(sys.argv[1]))[\"traceEvents\"]
rows = {(e[\"pid\"], e[\"tid\"]): e[\"args\"][\"name\"] for e in ev if e[\"name\"] == \"thread_name\"}
used = {rows[(e[\"pid\"], e[\"tid\"])] for e in ev if e[\"ph\"] == \"X\"}
sys.exit(not (\"stream compute\" in used and any(r.startswith(\"stream comm \") for r in used)))" "$work/trace_on.json"'

  rm -rf "$work"
fi
echo "cpu losses: $(echo $cpu)"
echo "cuda losses: $(echo $emu)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
