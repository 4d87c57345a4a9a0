#!/usr/bin/env bash
# tools/generate_hf.py end to end: a byte-level BPE tokenizer.json trained on the repo's docs ->
# llm.c shards through tools/prepare_hf.py -> a tiny model trained on them on CPU -> greedy text from
# tools/generate_hf.py, checked against `llamatron generate --tokens` decoded with the same tokenizer;
# and the wrapper's error lines. Needs `tokenizers` from PyPI: like data_pipeline.sh, this script
# makes (or reuses) a venv in WORKDIR/../tools-venv and fails, not skips, if that cannot be installed.
#
# Usage: generate_hf.sh PATH_TO_llamatron WORKDIR SOURCE_DIR      (CTest: generate_hf)
set -u
BIN=$1 SRC=$3
rm -rf "$2" && mkdir -p "$2" || exit 2
W=$(cd "$2" && pwd)
source "$SRC/tests/e2e/lib.sh"
PY=$(tools_venv "$W") || { fail "tokenizers from PyPI for tools/generate_hf.py" "pip install failed: $(tail -3 "$W/pip.out")"; finish; }
PROMPT="The model"

# ---- corpus, tokenizer, shards ---------------------------------------------------------------------
mkdir -p "$W/corpus"
for f in "$SRC"/README.md "$SRC"/docs/*.md; do cp "$f" "$W/corpus/$(basename "$f" .md).txt"; done
VOCAB=$("$PY" - "$W" "$W"/corpus/*.txt <<'PY'
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train(sys.argv[2:], trainer)
tok.save(sys.argv[1] + "/tokenizer.json")
print(tok.get_vocab_size())
PY
)
check "a byte-level BPE tokenizer is trained" '[ -f "$W/tokenizer.json" ] && [ "${VOCAB:-0}" -gt 256 ]' "vocab: ${VOCAB:-none}"
"$PY" "$SRC/tools/prepare_hf.py" --tokenizer "$W/tokenizer.json" --out "$W/hf" "$W"/corpus/*.txt >"$W/prep.out" 2>&1
check "tools/prepare_hf.py writes llm.c shards" '[ -f "$W/hf/data_000000.bin" ]' "$(cat "$W/prep.out")"

# ---- a tiny model trained on them ------------------------------------------------------------------
cat >"$W/tiny.yaml" <<YAML
model: {vocab_size: $(( (VOCAB + 63) / 64 * 64 )), dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 128, max_seq_len: 64}
train: {steps: 60, micro_batch_size: 8, seq_length: 64, seed: 1}
optimizer: {lr: 3.0e-3}
schedule: {min_lr: 3.0e-4, warmup_steps: 5, decay_style: cosine}
data: {source: llmc, paths: ["$W/hf/data_*.bin"]}
checkpoint: {dir: "$W/ck"}
logging: {log_every: 10}
YAML
"$BIN" train "$W/tiny.yaml" >"$W/train.out" 2>&1
rc=$?
check "trains 60 steps on the shards and saves a checkpoint" '[ $rc -eq 0 ] && [ -f "$W/ck/latest" ]' "$(tail -5 "$W/train.out")"
[ -f "$W/ck/latest" ] || finish

# ---- generate_hf.py against llamatron generate --tokens --------------------------------------------
gen_hf() { "$PY" "$SRC/tools/generate_hf.py" --bin "$BIN" "$@"; }
gen_hf "$W/ck" --tokenizer "$W" --prompt "$PROMPT" --temperature 0 --max-new 24 >"$W/gen.out" 2>"$W/gen.err"
rc=$?
IDS=$("$PY" -c 'import sys; from tokenizers import Tokenizer
t = Tokenizer.from_file(sys.argv[1]); print(",".join(map(str, t.encode(sys.argv[2], add_special_tokens=False).ids)))' \
  "$W/tokenizer.json" "$PROMPT")
"$PY" -c 'import sys; from tokenizers import Tokenizer
t = Tokenizer.from_file(sys.argv[1]); sys.stdout.buffer.write(t.decode([int(i) for i in sys.argv[2].split(",")]).encode())' \
  "$W/tokenizer.json" "$IDS" >"$W/prompt.expected"
check "greedy generate_hf.py exits 0 and continues the prompt as the tokenizer decodes it" \
  '[ $rc -eq 0 ] && [ ! -s "$W/gen.err" ] && [ "$(head -c "$(wc -c <"$W/prompt.expected")" "$W/gen.out")" = "$(cat "$W/prompt.expected")" ] &&
   [ "$(wc -c <"$W/gen.out")" -gt "$(( $(wc -c <"$W/prompt.expected") + 1 ))" ]' \
  "rc $rc, prompt '$(cat "$W/prompt.expected")', got: $(cat "$W/gen.out" "$W/gen.err")"
"$BIN" generate "$W/ck" --tokens "$IDS" --temperature 0 --max-new 24 >"$W/raw.out" 2>&1
"$PY" - "$W/tokenizer.json" "$IDS" "$(cat "$W/raw.out")" >"$W/gen.expected" <<'PY'
import sys
from tokenizers import Tokenizer
t = Tokenizer.from_file(sys.argv[1])
ids = [int(i) for i in sys.argv[2].split(",")]
gen = [int(i) for i in sys.argv[3].split(",")] if sys.argv[3] else []
eos = t.token_to_id("<|endoftext|>")
gen = gen[:gen.index(eos)] if eos in gen else gen
sys.stdout.buffer.write(t.decode(ids + gen).encode() + b"\n")
PY
check "generate_hf.py prints llamatron generate --tokens' ids decoded with the tokenizer" \
  'cmp -s "$W/gen.out" "$W/gen.expected"' "ids $(cat "$W/raw.out"): expected '$(cat "$W/gen.expected")', got '$(cat "$W/gen.out")'"

# ---- errors ------------------------------------------------------------------------------------------
one_error() { [ "$1" -eq 1 ] && [ ! -s "$W/err.out" ] && [ "$(wc -l <"$W/err.stderr")" -eq 1 ] && grep -q "^generate_hf: error: $2" "$W/err.stderr"; }
gen_hf "$W/ck" --tokenizer "$W/missing.json" --prompt "$PROMPT" >"$W/err.out" 2>"$W/err.stderr"
rc=$?
check "a missing tokenizer file is one error line, exit 1" 'one_error $rc ".*missing.json"' "rc $rc: $(cat "$W/err.out" "$W/err.stderr")"
gen_hf "$W/ck" --tokenizer "$W" --prompt "" >"$W/err.out" 2>"$W/err.stderr"
rc=$?
check "an empty prompt is one error line, exit 1" 'one_error $rc "the prompt encodes to zero tokens"' "rc $rc: $(cat "$W/err.out" "$W/err.stderr")"
mkdir -p "$W/small/step_1" && echo step_1 >"$W/small/latest"
sed 's/^\([[:space:]]*vocab_size:\).*/\1 32/' "$W/ck/$(cat "$W/ck/latest")/config.yaml" >"$W/small/step_1/config.yaml"
gen_hf "$W/small" --tokenizer "$W" --prompt "$PROMPT" >"$W/err.out" 2>"$W/err.stderr"
rc=$?
check "a token id beyond the model's vocab_size is one error line, exit 1" 'one_error $rc ".*vocab_size is 32"' \
  "rc $rc: $(cat "$W/err.out" "$W/err.stderr")"
gen_hf "$W/nothing" --tokenizer "$W" --prompt "$PROMPT" >"$W/err.out" 2>"$W/err.stderr"
rc=$?
check "llamatron's error (no checkpoint) is forwarded as one error line, exit 1" 'one_error $rc ".*config.yaml"' \
  "rc $rc: $(cat "$W/err.out" "$W/err.stderr")"
finish
