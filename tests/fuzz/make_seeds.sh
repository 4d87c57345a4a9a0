#!/usr/bin/env bash
# Makes the fuzz targets' seed corpora in tests/fuzz/seeds/ from real files: a checkpoint of the
# tiny model the checkpoint target knows (tensor parallelism 2, so pieces are split), its Hugging
# Face export, data in both token formats, and the shipped configs. Run once when a format
# changes; the seeds are committed (they are inputs, not expected outputs).
#
# Usage: tests/fuzz/make_seeds.sh PATH_TO_llamatron
set -euo pipefail
BIN=$(realpath "$1")
cd "$(dirname "$0")"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
rm -rf seeds && mkdir -p seeds/{safetensors_checkpoint,checkpoint_json,hf_config,megatron_idx,llmc_header,config_yaml}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1

# The model of fuzz_safetensors_checkpoint.cpp (tiny()), trained 1 step under tp 2.
cat >"$W/tiny.yaml" <<YAML
model: {vocab_size: 20, dim: 8, n_layers: 1, n_heads: 2, n_kv_heads: 1, ffn_dim: 16, max_seq_len: 8}
parallel: {tensor_parallel: 2}
train: {steps: 1, micro_batch_size: 1, seq_length: 8}
data: {markov_branching: 2}
checkpoint: {dir: $W/ckpt}
YAML
mpirun -np 2 --oversubscribe "$BIN" train "$W/tiny.yaml" >/dev/null
step=$W/ckpt/$(cat "$W/ckpt/latest")
cp "$step"/rank_0000{0,1}.safetensors seeds/safetensors_checkpoint/
cp "$step/trainer.json" "$step/manifest.json" seeds/checkpoint_json/
"$BIN" export-hf "$W/ckpt" "$W/hf" --dtype fp32 >/dev/null
cp "$W/hf/model.safetensors" seeds/safetensors_checkpoint/hf_model.safetensors
cp "$W/hf/config.json" seeds/hf_config/
printf '{"metadata": {"total_size": 6000}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors", "lm_head.weight": "model-00002-of-00002.safetensors"}}\n' \
  >seeds/hf_config/model.safetensors.index.json

# Token data: an llm.c shard and a Megatron dataset (its .idx behind the .bin's size, as the target reads it).
printf 'one document\n' >"$W/a.txt"
printf '{"text": "two"}\n{"text": "three documents"}\n' >"$W/b.jsonl"
"$BIN" data prepare "$W/a.txt" "$W/b.jsonl" --out "$W/data" --format both >/dev/null
cp "$W"/data/*.bin seeds/llmc_header/ 2>/dev/null || true
for idx in "$W"/data/*.idx; do
  python3 -c 'import os, struct, sys; sys.stdout.buffer.write(struct.pack("<Q", os.path.getsize(sys.argv[1])) + open(sys.argv[2], "rb").read())' \
    "${idx%.idx}.bin" "$idx" >"seeds/megatron_idx/$(basename "$idx")"
done
# llm.c shards are the .bin files without a sibling .idx
for f in seeds/llmc_header/*.bin; do [ -f "$W/data/$(basename "${f%.bin}").idx" ] && rm "$f"; done

cp ../../configs/*.yaml ../e2e/tiny_synthetic.yaml seeds/config_yaml/
cp "$W/tiny.yaml" seeds/config_yaml/fuzz_tiny_tp2.yaml
du -sh seeds/*
