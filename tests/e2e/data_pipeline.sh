#!/usr/bin/env bash
# The data pipeline end to end: raw text -> shards (built-in byte tokenizer, and a Hugging Face
# tokenizer.json through tools/prepare_hf.py) -> `llamatron data inspect` -> training on llm.c
# shards, on a Megatron dataset, on a blend of two, with held-out validation; and the bad inputs of
# a blend. tools/prepare_hf.py needs `tokenizers` from PyPI: this script makes a venv for it
# (in WORKDIR/../tools-venv) and fails, not skips, if that cannot be installed.
#
# Usage: data_pipeline.sh PATH_TO_llamatron WORKDIR SOURCE_DIR      (CTest: data_pipeline)
set -u
BIN=$1 SRC=$3
rm -rf "$2" && mkdir -p "$2" || exit 2
W=$(cd "$2" && pwd)
source "$SRC/tests/e2e/lib.sh"

# ---- corpus: 40 small documents of English-like text, as .txt and .jsonl ------------------------
mkdir -p "$W/raw"
/usr/bin/python3 - "$W/raw" <<'PY'
import json, random, sys
random.seed(3)
words = "the a model learns data from tokens of text and every step makes loss fall over time".split()
docs = [" ".join(random.choice(words) for _ in range(random.randint(40, 120))) for _ in range(40)]
for i, d in enumerate(docs[:20]):
    open(f"{sys.argv[1]}/doc{i:02d}.txt", "w").write(d)
with open(f"{sys.argv[1]}/more.jsonl", "w") as f:
    for d in docs[20:]:
        f.write(json.dumps({"text": d, "source": "test"}) + "\n")
PY

# ---- byte-level preparation, both formats -------------------------------------------------------
"$BIN" data prepare "$W"/raw/doc*.txt "$W/raw/more.jsonl" --out "$W/bytes" --format both --shard-tokens 4000 >"$W/prep.out" 2>&1
check "byte-level prepare writes llm.c shards and a Megatron dataset" \
  '[ -f "$W/bytes/data_000000.bin" ] && [ -f "$W/bytes/data_000001.bin" ] && [ -f "$W/bytes/data.idx" ] && grep -q "40 documents" "$W/prep.out"' \
  "$(cat "$W/prep.out")"
"$BIN" data inspect "$W/bytes/data" >"$W/inspect.out" 2>&1
check "inspect reads the Megatron dataset" 'grep -q "documents: 40" "$W/inspect.out" && grep -q "max id:    256" "$W/inspect.out"' "$(cat "$W/inspect.out")"
"$BIN" data inspect "$W/bytes/data_000000.bin" >"$W/inspect.out" 2>&1
check "inspect reads an llm.c shard" 'grep -q "llm.c token shard" "$W/inspect.out" && grep -q "tokens:    4000" "$W/inspect.out"' "$(cat "$W/inspect.out")"

# ---- training on each format ------------------------------------------------------------------
cat >"$W/base.yaml" <<YAML
model: {vocab_size: 257, dim: 64, n_layers: 1, n_heads: 1, n_kv_heads: 1, ffn_dim: 128, max_seq_len: 32}
optimizer: {lr: 3.0e-3}
schedule: {warmup_steps: 0}
train: {steps: 6, micro_batch_size: 4, seq_length: 32, threads: 1, eval_every: 3, eval_batches: 2}
logging: {log_every: 1}
YAML
train() { "$BIN" train "$W/base.yaml" "$@" >"$W/train.out" 2>&1; }
steps_ok() { [ "$(grep -c '\] step ' "$W/train.out")" -eq 6 ] && [ "$(grep -c '\] valid ' "$W/train.out")" -eq 2 ]; }
train --set data.source=llmc --set "data.paths=$W/bytes/data_*.bin" --set data.valid_fraction=0.1 --set "checkpoint.dir=$W/ck"
check "trains on llm.c shards with held-out validation every 3 steps" 'steps_ok' "$(tail -5 "$W/train.out")"
"$BIN" generate "$W/ck" --prompt "the model " --temperature 0 --max-new 12 >"$W/gen1.out" 2>&1
"$BIN" generate "$W/ck" --prompt "the model " --temperature 0 --max-new 12 >"$W/gen2.out" 2>&1
"$BIN" generate "$W/ck" --prompt "the model " --temperature 1.0 --top-k 5 --seed 3 --max-new 12 >"$W/gen3.out" 2>&1
check "generate: greedy continues the byte-level prompt, the same every time" \
  'grep -q "^the model " "$W/gen1.out" && [ "$(head -c 100 "$W/gen1.out" | wc -c)" -gt 12 ] && cmp -s "$W/gen1.out" "$W/gen2.out"' \
  "$(cat "$W/gen1.out" "$W/gen2.out")"
check "generate: temperature and top-k sampling runs" 'grep -q "^the model " "$W/gen3.out"' "$(cat "$W/gen3.out")"
train --set data.source=megatron --set "data.paths=$W/bytes/data" --set data.valid_fraction=0.1
check "trains on the Megatron dataset" 'steps_ok' "$(tail -5 "$W/train.out")"
"$BIN" data prepare "$W"/raw/doc0*.txt --out "$W/bytes2" --name part --format megatron >/dev/null 2>&1
train --set data.source=megatron --set "data.paths=$W/bytes/data,$W/bytes2/part" --set data.weights=0.7,0.3 \
  --set "data.valid_paths=$W/bytes2/part"
check "trains on a weighted blend, validating on a separate dataset" 'steps_ok && grep -q "blend of 2" "$W/train.out"' "$(tail -5 "$W/train.out")"

# ---- bad blends -----------------------------------------------------------------------------------
train --set data.source=megatron --set "data.paths=$W/bytes/data,$W/bytes2/part" --set data.weights=0.7,0
rc=$?
check "a zero blend weight is a config error" '[ $rc -eq 1 ] && grep -q "data.weights must all be positive, got 0:" "$W/train.out"' "$(cat "$W/train.out")"
train --set data.source=megatron --set "data.paths=$W/bytes/data" --set data.weights=0.7,0.3
check "weights not matching the datasets is a config error" 'grep -q "one blend weight per dataset" "$W/train.out"' "$(cat "$W/train.out")"
train --set data.source=megatron --set "data.paths=$W/bytes/data" --set train.eval_every=2
check "eval_every without validation data is an error" 'grep -q "no validation data" "$W/train.out"' "$(cat "$W/train.out")"

# ---- Hugging Face tokenizer.json through tools/prepare_hf.py -------------------------------------
if PY=$(tools_venv "$W"); then
  "$PY" "$SRC/tests/tools/test_prepare_hf.py" >"$W/hf_test.out" 2>&1
  rc=$?
  check "tools/prepare_hf.py unit tests" '[ $rc -eq 0 ]' "$(tail -15 "$W/hf_test.out")"
  "$PY" - "$W" "$W"/raw/doc*.txt <<'PY'
import sys
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
tok = Tokenizer(models.BPE(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.train(sys.argv[2:], trainers.BpeTrainer(special_tokens=["<unk>", "</s>"], vocab_size=120))
tok.save(sys.argv[1] + "/tokenizer.json")
PY
  "$PY" "$SRC/tools/prepare_hf.py" --tokenizer "$W/tokenizer.json" --out "$W/hf" --format both \
    "$W"/raw/doc*.txt "$W/raw/more.jsonl" >"$W/hf_prep.out" 2>&1
  "$BIN" data inspect "$W/hf/data" >"$W/inspect.out" 2>&1
  check "prepare_hf output is read by llamatron" 'grep -q "documents: 40" "$W/inspect.out"' "$(cat "$W/hf_prep.out" "$W/inspect.out")"
  train --set model.vocab_size=128 --set data.source=llmc --set "data.paths=$W/hf/data_*.bin" --set data.valid_fraction=0.1 \
    --set train.seq_length=16
  check "trains on Hugging Face-tokenized shards" 'steps_ok' "$(tail -5 "$W/train.out")"
else
  fail "tokenizers from PyPI for tools/prepare_hf.py" "pip install failed: $(tail -3 "$W/pip.out" 2>/dev/null)"
fi

finish
