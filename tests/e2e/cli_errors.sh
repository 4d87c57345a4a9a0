#!/usr/bin/env bash
# End-to-end checks of the `llamatron` command line: every bad input must be a clean user error
# (exit status 1, exactly one stderr line "llamatron: error: ..." that names the problem, no core
# file, nothing on stdout but log lines), and a valid tiny run must train and be deterministic.
#
# Usage: cli_errors.sh PATH_TO_llamatron WORKDIR      (run by CTest as the test `cli_errors`)
set -u

if (( $# != 2 )); then
  echo "usage: $0 PATH_TO_llamatron WORKDIR" >&2
  exit 2
fi
source "$(dirname "$0")/lib.sh"
cli_workdir "$1" "$2"

# write_shard PATH MAGIC VERSION HEADER_NTOK N_WRITTEN [LAST_TOKEN]
# An llm.c shard: 256 x int32 header (magic, version, token count), then N_WRITTEN tokens, uint32
# for magic 20240801 and uint16 otherwise; ids cycle below 64, the last one is LAST_TOKEN if given.
write_shard() {
  python3 -c '
import struct, sys
path, magic, version, header_ntok, n = sys.argv[1], *map(int, sys.argv[2:6])
tokens = [(37 * i + 11) % 64 for i in range(n)]
if len(sys.argv) > 6:
    tokens[-1] = int(sys.argv[6])
header = [magic, version, header_ntok] + [0] * 253
width = "I" if magic == 20240801 else "H"
with open(path, "wb") as f:
    f.write(struct.pack("<256i", *header))
    f.write(struct.pack("<%d%s" % (n, width), *tokens))
' "$@" || { echo "$0: cannot write shard $1" >&2; exit 2; }
}

# ---- inputs --------------------------------------------------------------------------------------
write_shard "$W/valid.bin"     20240520 1 200 200     # uint16 tokens
write_shard "$W/truncated.bin" 20240520 1 200 150     # header promises 200 tokens, file holds 150
write_shard "$W/bad_magic.bin" 20240521 1 200 200
write_shard "$W/bad_version.bin" 20240801 1 200 200   # version 1 belongs to the uint16 magic
write_shard "$W/big_token.bin" 20240801 7 200 200 64  # uint32 tokens, last id == vocab_size
write_shard "$W/short.bin"     20240520 1 10 10       # fewer than seq_len + 1 = 17 tokens

cat >"$W/base.yaml" <<EOF
model: {vocab_size: 64, dim: 32, n_layers: 1, n_heads: 2, n_kv_heads: 2, ffn_dim: 64, max_seq_len: 16}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 0}
data: {source: llmc, paths: [$W/valid.bin]}
train: {steps: 2, micro_batch_size: 2, seq_length: 16, seed: 7}
logging: {log_every: 1}
EOF

cat >"$W/typo.yaml" <<'EOF'
model: {dimm: 64}
EOF

cat >"$W/garbage.yaml" <<'EOF'
{{{ this is ::: not ][ yaml
EOF

BASE=$W/base.yaml

# ---- bad inputs: one row per case ----------------------------------------------------------------
#            name                                  keyword                             -- llamatron arguments
expect_error "unknown config key in YAML"          "unknown config key 'model.dimm'"   -- train "$W/typo.yaml"
expect_error "unknown config key via --set"        "unknown config key 'train.stepz'"  -- train "$BASE" --set train.stepz=3
expect_error "malformed --set without ="           "expects key=value"                 -- train "$BASE" --set train.steps
expect_error "missing config file"                 "$W/no_such_config.yaml"            -- train "$W/no_such_config.yaml"
expect_error "dim not divisible by n_heads"        "divisible"                         -- train "$BASE" --set model.dim=30 --set model.n_heads=4
expect_error "n_heads not a multiple of n_kv_heads" "multiple of n_kv_heads"           -- train "$BASE" --set model.n_heads=4 --set model.n_kv_heads=3
expect_error "odd head_dim"                        "must be even"                      -- train "$BASE" --set model.dim=12 --set model.n_heads=4
expect_error "seq_len > max_seq_len"               "exceeds model.max_seq_len"         -- train "$BASE" --set train.seq_length=32
expect_error "non-numeric integer value"           "'train.micro_batch_size' expects an integer" -- train "$BASE" --set train.micro_batch_size=two
expect_error "missing data shard"                  "$W/no_such_shard.bin"              -- train "$BASE" --set "data.paths=$W/no_such_shard.bin"
expect_error "truncated shard"                     "truncated"                         -- train "$BASE" --set "data.paths=$W/truncated.bin"
expect_error "wrong shard magic"                   "magic"                             -- train "$BASE" --set "data.paths=$W/bad_magic.bin"
expect_error "unknown shard version"               "version"                           -- train "$BASE" --set "data.paths=$W/bad_version.bin"
expect_error "token id >= vocab_size"              "vocab_size"                        -- train "$BASE" --set "data.paths=$W/big_token.bin"
expect_error "shard shorter than seq_len+1"        "seq_length + 1"                    -- train "$BASE" --set "data.paths=$W/short.bin"
expect_error "non-YAML garbage config"             "not valid YAML"                    -- train "$W/garbage.yaml"
expect_error "unknown anomaly action"              "train.anomaly_action must be log, skip or stop" -- train "$BASE" --set train.anomaly_action=panic
expect_error "unwritable metrics file"             "logging.metrics_file"                -- train "$BASE" --set logging.metrics_file=/nonexistent_dir/m.jsonl
expect_error "checkpoint.dir under a file"        "is a writable directory"            -- train "$BASE" --set "checkpoint.dir=$W/base.yaml/ckpt"

# ---- positive control and determinism ------------------------------------------------------------
# Prints the "loss X" and "grad norm Y" fields of the step lines of the last run.
step_metrics() { grep -E '\] step ' "$OUT" | grep -oE '(loss|grad norm) [^ |]+'; }

run_cli train "$BASE" --set train.steps=2
if (( RC != 0 )); then
  fail "valid tiny run" "$(describe_rc), expected 0; stderr: $(head -c 300 "$ERR")"
elif [[ -s $ERR ]]; then
  fail "valid tiny run" "unexpected stderr: $(head -c 300 "$ERR")"
elif (( $(grep -cE '\] step +[0-9]+/2 .*loss [0-9]+\.[0-9]+ ' "$OUT") != 2 )); then
  fail "valid tiny run" "expected 2 step lines with a numeric loss; stdout: $(tail -c 400 "$OUT")"
elif [[ -n $(stray_stdout) ]]; then
  fail "valid tiny run" "stdout has non-log output: $(stray_stdout)"
else
  pass "valid tiny run"
fi
first=$(step_metrics)

run_cli train "$BASE" --set train.steps=2 --set "logging.metrics_file=$W/metrics.jsonl"
second=$(step_metrics)
if [[ $(wc -l <"$W/metrics.jsonl") -eq 2 ]] && /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] > 0 and r["perplexity"] > 1 for r in rows)' "$W/metrics.jsonl"; then
  pass "metrics JSONL: one parseable record per step"
else
  fail "metrics JSONL" "$(head -c 300 "$W/metrics.jsonl" 2>/dev/null)"
fi
if (( RC != 0 )); then
  fail "deterministic losses across runs" "second run: $(describe_rc); stderr: $(head -c 300 "$ERR")"
elif [[ -z $first ]]; then
  fail "deterministic losses across runs" "first run printed no loss values"
elif [[ $first != "$second" ]]; then
  fail "deterministic losses across runs" "run 1: $(echo $first) / run 2: $(echo $second)"
else
  pass "deterministic losses across runs"
fi

finish
