#!/usr/bin/env bash
# A full disk during checkpoint saves. A small tmpfs (in a private mount namespace, gone when the
# test ends) holds checkpoint.dir and the metrics file; it is filled until only F pages are free,
# for every F from 0 to a checkpoint's size and beyond, and a run resumes and saves two more steps.
# Each run must either succeed, or fail with one "llamatron: error: ... No space left on device"
# line (exit 1); `latest` must always name a complete checkpoint that loads, and once space is
# freed the run must resume from it. Needs root (mount); without it the test fails saying so.
#
# With MPIEXEC, also under mpirun -np 2 (data parallel): a rank that meets the full disk while the
# other does not must not leave the job hanging.
#
# Usage: full_disk.sh PATH_TO_llamatron WORKDIR [MPIEXEC]     (CTest: full_disk, full_disk_asan)
set -u
if (( $# != 2 && $# != 3 )); then
  echo "usage: $0 PATH_TO_llamatron WORKDIR [MPIEXEC]" >&2
  exit 2
fi
MPIEXEC=${3:-}
if [[ ${LT_FULL_DISK_INSIDE:-} != 1 ]]; then
  if [[ $(id -u) != 0 ]] || ! unshare -m true 2>/dev/null; then
    echo "FAIL - full_disk needs root to mount a small tmpfs in a private mount namespace (unshare -m); run it as root (CI does)"
    exit 1
  fi
  LT_FULL_DISK_INSIDE=1 exec unshare -m --propagation private bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
cli_workdir "$1" "$2"
export OMP_NUM_THREADS=1
DISK=$W/disk
mkdir -p "$DISK"
mount -t tmpfs -o size=4m tmpfs "$DISK" || { echo "FAIL - cannot mount a tmpfs on $DISK"; exit 1; }
trap 'umount "$DISK" 2>/dev/null' EXIT
PAGE=$(stat -f -c %S "$DISK")

cat >"$W/run.yaml" <<YAML
model: {vocab_size: 64, dim: 32, n_layers: 1, n_heads: 2, n_kv_heads: 2, ffn_dim: 64, max_seq_len: 16}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 0}
train: {steps: 1, micro_batch_size: 2, seq_length: 16, precision: fp32}
data: {markov_branching: 4}
logging: {log_every: 1, metrics_file: $DISK/metrics.jsonl}
checkpoint: {dir: $DISK/ckpt, every: 1, keep_last: 0}
YAML

free_pages() { echo $(( $(stat -f -c %a "$DISK") )); }
# The size of one checkpoint in pages, from a first save on the empty disk.
run_cli train "$W/run.yaml"
(( RC == 0 )) || { fail "set-up: a first checkpoint" "$(describe_rc): $(head -c 300 "$ERR")"; finish; }
cp -a "$DISK/ckpt" "$W/ckpt_step1"
before=$(free_pages)
run_cli train "$W/run.yaml" --set train.steps=2
(( RC == 0 )) || { fail "set-up: a second checkpoint" "$(describe_rc): $(head -c 300 "$ERR")"; finish; }
per_save=$(( before - $(free_pages) ))
echo "one save takes $per_save pages of $PAGE bytes"

# latest_problem: why DISK/ckpt/latest does not name a complete, loadable checkpoint ("" if it does).
latest_problem() {
  local name
  [[ -s $DISK/ckpt/latest ]] || { echo "latest is missing or empty"; return; }
  name=$(<"$DISK/ckpt/latest")
  [[ -s $DISK/ckpt/$name/manifest.json ]] || { echo "latest names '$name', which has no (or an empty) manifest.json"; return; }
  "$BIN" export-hf "$DISK/ckpt" "$W/probe" --dtype fp32 >"$W/probe.out" 2>&1 || echo "latest ($name) does not load: $(cat "$W/probe.out")"
  rm -rf "$W/probe"
}

failures=0
stride=${LT_FULL_DISK_STRIDE:-1}  # every free-page count, or every stride-th (the slower ASan build)
for (( f = 0; f <= 2 * per_save + 4; f += stride )); do
  rm -rf "${DISK:?}"/*
  cp -a "$W/ckpt_step1" "$DISK/ckpt"
  avail=$(free_pages)
  (( avail > f )) && head -c $(( (avail - f) * PAGE )) /dev/zero >"$DISK/filler" 2>/dev/null
  run_cli train "$W/run.yaml" --set train.steps=3
  name="$f free page(s)" first_rc=$RC
  mapfile -t lines <"$ERR"
  what=${lines[0]:-}
  what=${what#llamatron: error: }
  if (( RC == 1 )); then
    failures=$((failures + 1))
    if (( ${#lines[@]} != 1 )) || [[ ${lines[0]} != "llamatron: error: "* ]] || [[ ${lines[0]} != *"No space left on device"* ]]; then
      fail "$name: a clean error" "${#lines[@]} stderr line(s): $(head -c 300 "$ERR")"
      continue
    fi
  elif (( RC != 0 )); then
    fail "$name" "$(describe_rc): $(head -c 300 "$ERR")"
    continue
  fi
  problem=$(latest_problem)
  if [[ -n $problem ]]; then fail "$name (exit $RC): latest is complete" "$problem"; continue; fi
  if (( RC == 1 )); then  # space freed: the run resumes from latest and finishes
    rm -f "$DISK/filler"
    want=$(<"$DISK/ckpt/latest")
    run_cli train "$W/run.yaml" --set train.steps=3
    if (( RC != 0 )) || ! grep -q "resumed from $DISK/ckpt/$want " "$OUT"; then
      fail "$name: resumes from $want once space is freed" "$(describe_rc): $(head -c 300 "$ERR")"
      continue
    fi
  fi
  pass "$name: exit $first_rc, latest names a complete checkpoint$( (( first_rc == 1 )) && echo ", and the run resumed from it (${what:0:90})")"
done
# Under mpirun: both ranks write their files to the same small disk, so one may fail alone.
if [[ -n $MPIEXEC ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  for (( f = 0; f <= 2 * per_save + 4; f += 4 * stride )); do
    rm -rf "${DISK:?}"/*
    avail=$(free_pages)
    (( avail > f )) && head -c $(( (avail - f) * PAGE )) /dev/zero >"$DISK/filler" 2>/dev/null
    (cd "$RUN_DIR" && ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" exec timeout 120 "$MPIEXEC" -np 2 --oversubscribe "$BIN" train "$W/run.yaml" --set train.steps=3 \
       --set checkpoint.resume=never) >"$OUT" 2>"$ERR"
    RC=$?
    name="mpirun -np 2, $f free page(s)"
    if (( RC == 124 )); then fail "$name" "the job hung"
    elif (( RC != 0 )) && ! grep -q "^llamatron: error: .*No space left on device\|^llamatron: error: .*rank 1 failed" "$ERR"; then
      fail "$name" "$(describe_rc) without a clean error: $(head -c 300 "$ERR")"
    elif (( RC != 0 )) && grep -q "internal error" "$ERR"; then fail "$name" "an internal error: $(head -c 300 "$ERR")"
    elif [[ -n $(crash_sign "$ERR") ]]; then fail "$name" "a rank crashed: $(crash_sign "$ERR")"
    elif [[ -e $DISK/ckpt/latest ]] && [[ -n $(latest_problem) ]]; then fail "$name: latest is complete" "$(latest_problem)"
    else pass "$name: exit $RC, no hang$( [[ -e $DISK/ckpt/latest ]] && echo ", latest names a complete checkpoint")"
    fi
  done
fi

(( failures > 0 )) && pass "$failures of the runs met the full disk (each: one clean error)" || fail "the disk was never full" "no run failed: the sweep missed"
finish
