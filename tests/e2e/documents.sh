#!/usr/bin/env bash
# Packed documents from the command line: `llamatron data prepare` records its EOS (256) beside the
# shards; training with data.reset_attention_mask / reset_position_ids / eod_mask_loss takes it from
# there and saves it in the checkpoint's config; `logits` and `generate` then see documents as
# training did (--set overrides them; the cache and --no-cache agree across an eod); data without
# a record, or synthetic data, with a switch on and no data.eod_id is a one-line error.
#
# Usage: documents.sh PATH_TO_llamatron WORKDIR      (CTest: documents)
set -u
BIN=$1
rm -rf "$2" && mkdir -p "$2/text" || exit 2
W=$(cd "$2" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
export OMP_NUM_THREADS=2

for i in $(seq 1 60); do  # documents of uneven length
  head -c $((5 + (i * 37) % 90)) "$HERE/../../README.md" | tail -c $((3 + (i * 11) % 40)) >"$W/text/doc$i.txt"
done
"$BIN" data prepare "$W"/text/*.txt --out "$W/data" >"$W/prepare.out" 2>&1
check "data prepare records its end-of-document id beside the shards" \
  "grep -q '\"eod_id\": 256' '$W/data/data.dataset.json' && grep -q 'data_000000.bin' '$W/data/data.dataset.json'" \
  "$(cat "$W/prepare.out" "$W/data/data.dataset.json" 2>&1)"

cat >"$W/run.yaml" <<YAML
model: {vocab_size: 257, dim: 64, n_layers: 2, n_heads: 2, n_kv_heads: 1, ffn_dim: 96, max_seq_len: 64}
optimizer: {lr: 3.0e-3}
data: {source: llmc, paths: ["$W/data/data_*.bin"], reset_attention_mask: true, reset_position_ids: true, eod_mask_loss: true}
train: {steps: 20, micro_batch_size: 4, seq_length: 48, precision: fp32}
logging: {progress: never, log_every: 20}
checkpoint: {dir: "$W/ck"}
YAML
"$BIN" train "$W/run.yaml" >"$W/train.out" 2>&1
check "training takes eod id 256 from the record and says what the switches do" \
  "[[ $? == 0 ]] && grep -q 'documents: eod id 256, attention within documents, positions restart after each eod, eod targets not counted' '$W/train.out'" \
  "$(tail -5 "$W/train.out")"
check "the checkpoint's config keeps the eod id" "grep -rq 'eod_id: 256' '$W'/ck/*/config.yaml" "$(grep -r eod "$W"/ck/*/config.yaml)"

tokens=72,101,108,108,111,256,87,111,114,108,100  # "Hello" eod "World"
"$BIN" logits "$W/ck" --tokens $tokens --out "$W/as_trained.safetensors" >"$W/l1.out" 2>&1 &&
  "$BIN" logits "$W/ck" --tokens $tokens --out "$W/causal.safetensors" --set data.reset_attention_mask=false \
    --set data.reset_position_ids=false >"$W/l2.out" 2>&1
check "logits: as trained by default, --set turns the documents off (the logits differ)" \
  "[[ $? == 0 ]] && ! cmp -s '$W/as_trained.safetensors' '$W/causal.safetensors'" "$(cat "$W/l1.out" "$W/l2.out")"
"$BIN" logits "$W/ck" --tokens 72,101,108 --out "$W/one_a.safetensors" >/dev/null 2>&1 &&
  "$BIN" logits "$W/ck" --tokens 72,101,108 --out "$W/one_b.safetensors" --set data.reset_attention_mask=false >/dev/null 2>&1
check "logits: without an eod the switches change nothing" "cmp -s '$W/one_a.safetensors' '$W/one_b.safetensors'"
"$BIN" logits "$W/ck" --tokens 1 --out "$W/x.safetensors" --set model.dim=8 >"$W/l3.out" 2>&1
check "logits --set takes only the document switches" \
  "[[ $? != 0 ]] && grep -q 'only the document switches can be set here' '$W/l3.out'" "$(cat "$W/l3.out")"

"$BIN" generate "$W/ck" --tokens $tokens --tokens 256,65,66 --max-new 12 --temperature 0 >"$W/g1.out" 2>"$W/g1.err" &&
  "$BIN" generate "$W/ck" --tokens $tokens --tokens 256,65,66 --max-new 12 --temperature 0 --no-cache >"$W/g2.out" 2>"$W/g2.err"
check "generate across an eod: the KV cache gives the recomputing path's tokens" \
  "[[ $? == 0 ]] && [[ \$(wc -l <'$W/g1.out') == 2 ]] && cmp -s '$W/g1.out' '$W/g2.out'" "$(cat "$W/g1.out" "$W/g2.out" "$W/g1.err")"

# No record: a shard written elsewhere (the prepared one, copied without its record).
mkdir -p "$W/bare" && cp "$W/data/data_000000.bin" "$W/bare/shard.bin"
"$BIN" train "$W/run.yaml" --set data.paths="$W/bare/shard.bin" --set checkpoint.dir= >"$W/bare.out" 2>&1
check "data without a record and no data.eod_id: one error line naming the file and the fix" \
  "[[ $? != 0 ]] && [[ \$(grep -c '^llamatron: error: .*shard.bin has no record.*set data.eod_id' '$W/bare.out') == 1 ]]" "$(tail -3 "$W/bare.out")"
"$BIN" train "$W/run.yaml" --set data.paths="$W/bare/shard.bin" --set data.eod_id=256 --set checkpoint.dir= --set train.steps=2 \
  >"$W/given.out" 2>&1
check "... and with data.eod_id given it trains" "[[ $? == 0 ]] && grep -q 'documents: eod id 256' '$W/given.out'" "$(tail -3 "$W/given.out")"
"$BIN" train "$W/run.yaml" --set data.source=synthetic --set data.paths= --set checkpoint.dir= >"$W/syn.out" 2>&1
check "synthetic data with a switch on and no data.eod_id: one error line" \
  "[[ $? != 0 ]] && grep -q 'need data.eod_id with synthetic data' '$W/syn.out'" "$(tail -3 "$W/syn.out")"
finish
