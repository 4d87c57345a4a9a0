#!/usr/bin/env bash
# Files a user can edit or a disk can damage, made here as a hostile user would (issue "No input
# crashes it"): checkpoint piece metadata and trainer state re-sealed with recomputed checksums,
# Megatron indexes, Hugging Face directories, configs, FIFOs, signals during set-up, a shared
# checkpoint.dir, a full metrics disk (/dev/full). Each must be a clean user error (exit status 1,
# one "llamatron: error: ..." line naming the problem, no core file) or be handled correctly.
#
# Usage: hostile_inputs.sh PATH_TO_llamatron MPIEXEC WORKDIR      (CTest: hostile_inputs, and
# hostile_inputs_asan with the ASan + UBSan build)
set -u
if (( $# != 3 )); then
  echo "usage: $0 PATH_TO_llamatron MPIEXEC WORKDIR" >&2
  exit 2
fi
source "$(dirname "$0")/lib.sh"
cli_workdir "$1" "$3"
MPIEXEC=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
PY=python3

# ---- a checkpoint to attack: the tiny model under tp 2 (split pieces), 2 steps ------------------
cat >"$W/base.yaml" <<YAML
model: {vocab_size: 64, dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64, max_seq_len: 16}
optimizer: {lr: 1.0e-3}
schedule: {warmup_steps: 0}
train: {steps: 2, micro_batch_size: 2, seq_length: 16, precision: fp32}
data: {markov_branching: 4}
logging: {log_every: 1}
YAML
# (Under ASan, leak checks are off for processes mpirun starts: Open MPI's plugins leak at exit.)
if ! ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" "$MPIEXEC" -np 2 --oversubscribe "$BIN" train "$W/base.yaml" --set parallel.tensor_parallel=2 \
     --set "checkpoint.dir=$W/good" >"$W/setup.out" 2>&1; then
  fail "set-up: a tp 2 checkpoint" "$(tail -5 "$W/setup.out")"
  finish
fi
GOOD=$W/good/step_00000002

# tamper NAME PYTHON: a copy of the good checkpoint as $W/NAME, edited by PYTHON (with d: the step
# directory; pieces(rank, f): rewrite a rank file's piece list; state(f): rewrite trainer.json),
# then re-sealed: the manifest's sizes and FNV-1a checksums recomputed, as anyone can.
tamper() {
  local name=$1 code=$2
  rm -rf "$W/$name" && mkdir -p "$W/$name" && cp -r "$GOOD" "$W/$name/step_00000002" && echo step_00000002 >"$W/$name/latest"
  $PY - "$W/$name/step_00000002" "$code" <<'PY' || { echo "$0: tamper $name failed" >&2; exit 2; }
import json, os, struct, sys
d, code = sys.argv[1], sys.argv[2]

def rank_file(r):
    return os.path.join(d, "rank_%05d.safetensors" % r)

def read_st(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]

def write_st(path, header, body):
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + body)

def pieces(rank, f):
    header, body = read_st(rank_file(rank))
    p = json.loads(header["__metadata__"]["pieces"])
    f(p)
    header["__metadata__"]["pieces"] = json.dumps(p)
    write_st(rank_file(rank), header, body)

def header(rank, f):
    h, body = read_st(rank_file(rank))
    f(h)
    write_st(rank_file(rank), h, body)

def state(f):
    path = os.path.join(d, "trainer.json")
    s = json.load(open(path))
    f(s)
    open(path, "w").write(json.dumps(s))

def piece(p, param):
    return next(x for x in p if x["param"] == param)

exec(code)

def fnv1a64(data):  # the standard 64-bit FNV-1a, written independently of the engine
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h

m = json.load(open(os.path.join(d, "manifest.json")))
for f in m["files"]:
    if "/" in f["name"]:
        continue  # not a file of this checkpoint
    data = open(os.path.join(d, f["name"]), "rb").read()
    f["bytes"] = len(data)
    f["fnv1a64"] = "%016x" % fnv1a64(data)
open(os.path.join(d, "manifest.json"), "w").write(json.dumps(m))
PY
}

# The untouched checkpoint, re-sealed by the same code, loads: the tampering is what fails below.
tamper resealed ''
expect_loads() {
  run_cli export-hf "$W/$1" "$W/$1_hf" --dtype fp32
  if (( RC == 0 )); then pass "$2"; else fail "$2" "$(describe_rc): $(head -c 300 "$ERR")"; fi
}
expect_loads resealed "a re-sealed, untouched checkpoint loads (the checksums recomputed here are the engine's FNV-1a)"

# ---- checkpoint piece metadata ---------------------------------------------------------------
E=model.embed_tokens.weight Q=model.layers.0.self_attn.q_proj.weight N=model.norm.weight
tamper wrong_global "pieces(0, lambda p: piece(p, '$Q').update(global_shape=[33, 32]))"
expect_error "piece: a wrong global shape"   "global_shape"  -- export-hf "$W/wrong_global" "$W/x"
tamper range_end "pieces(0, lambda p: piece(p, '$Q').update(end=piece(p, '$Q')['end'] + 4096))"
expect_error "piece: a range end past its tensor" "\"end\""   -- export-hf "$W/range_end" "$W/x"
tamper end_2e32 "pieces(0, lambda p: piece(p, '$Q').update(end=2**32))"
expect_error "piece: an end of 2^32"         "\"end\""       -- export-hf "$W/end_2e32" "$W/x"
tamper huge_offset "pieces(1, lambda p: piece(p, '$Q').update(split_offset=2**40))"
expect_error "piece: a huge split offset"    "split_offset"  -- export-hf "$W/huge_offset" "$W/x"
tamper offset_past "pieces(1, lambda p: piece(p, '$Q').update(split_offset=20))"
expect_error "piece: a slice past the tensor" "does not fit" -- export-hf "$W/offset_past" "$W/x"
tamper split_vector "pieces(0, lambda p: piece(p, '$N').update(split_dim=0))"
expect_error "piece: a split vector"         "split_dim"     -- export-hf "$W/split_vector" "$W/x"
tamper foreign_param "pieces(0, lambda p: piece(p, '$N').update(param='model.layers.9.mlp.up_proj.weight'))"
expect_error "piece: a parameter the model lacks" "not a parameter of this model" -- export-hf "$W/foreign_param" "$W/x"
tamper string_begin "pieces(0, lambda p: piece(p, '$N').update(begin='0'))"
expect_error "piece: a field of the wrong type" "expected an integer" -- export-hf "$W/string_begin" "$W/x"
tamper no_pieces "header(0, lambda h: h['__metadata__'].pop('pieces'))"
expect_error "rank file without piece metadata" "no \"pieces\" metadata" -- export-hf "$W/no_pieces" "$W/x"
tamper f64_tensor "header(0, lambda h: [h[k].update(dtype='F64', shape=[h[k]['shape'][0] // 2]) for k in h if k.startswith('master/$N/')])"
expect_error "piece: a tensor of another dtype" "expected F32" -- export-hf "$W/f64_tensor" "$W/x"
tamper missing_rank "import os; os.remove(rank_file(1)); m = json.load(open(os.path.join(d, 'manifest.json'))); m['files'] = [f for f in m['files'] if f['name'] != 'rank_00001.safetensors']; open(os.path.join(d, 'manifest.json'), 'w').write(json.dumps(m))"
expect_error "layout with a rank file fewer" "rank files" -- export-hf "$W/missing_rank" "$W/x"

# ---- trainer.json ------------------------------------------------------------------------------
RESUME=(train "$W/base.yaml" --set train.steps=3)
tamper pos_neg "state(lambda s: s.update(data_position=-1))"
expect_error "trainer.json: data_position -1"  "data_position" -- "${RESUME[@]}" --set "checkpoint.resume=$W/pos_neg"
tamper pos_huge "state(lambda s: s.update(data_position=1e20))"
expect_error "trainer.json: data_position 1e20" "data_position" -- "${RESUME[@]}" --set "checkpoint.resume=$W/pos_huge"
tamper pos_past "state(lambda s: s.update(data_position=s['tokens_seen'] + 1))"
expect_error "trainer.json: data_position past the tokens seen" "data_position" -- "${RESUME[@]}" --set "checkpoint.resume=$W/pos_past"
tamper step_neg "state(lambda s: s.update(step=-1))"
expect_error "trainer.json: a negative step"   "\"step\""      -- "${RESUME[@]}" --set "checkpoint.resume=$W/step_neg"
tamper opt_steps "state(lambda s: s.update(optimizer_steps=s['step'] + 5))"
expect_error "trainer.json: more optimizer steps than steps" "optimizer_steps" -- "${RESUME[@]}" --set "checkpoint.resume=$W/opt_steps"
tamper precision "state(lambda s: s.update(precision='fp8'))"
expect_error "trainer.json: an unknown precision" "precision"  -- "${RESUME[@]}" --set "checkpoint.resume=$W/precision"
tamper model_type "state(lambda s: s['model'].update({'model.dim': 32}))"
expect_error "trainer.json: a model value of the wrong type" "expected a string" -- "${RESUME[@]}" --set "checkpoint.resume=$W/model_type"
tamper model_key "state(lambda s: s['model'].update({'train.steps': '9'}))"
expect_error "trainer.json: a key that is not the model's" "not a model config key" -- "${RESUME[@]}" --set "checkpoint.resume=$W/model_key"
tamper layout "state(lambda s: s['layout'].update(tensor_parallel=4))"
expect_error "trainer.json: a layout the rank files do not match" "rank files" -- "${RESUME[@]}" --set "checkpoint.resume=$W/layout"
tamper dup_key "t = open(os.path.join(d, 'trainer.json')).read(); open(os.path.join(d, 'trainer.json'), 'w').write(t.replace('{', '{\"step\": 1, ', 1))"
expect_error "trainer.json: a duplicate key" "appears twice"  -- "${RESUME[@]}" --set "checkpoint.resume=$W/dup_key"

# ---- manifest and `latest` ---------------------------------------------------------------------
tamper traversal "m = json.load(open(os.path.join(d, 'manifest.json'))); m['files'][0]['name'] = '../../../etc/passwd'; open(os.path.join(d, 'manifest.json'), 'w').write(json.dumps(m))"
expect_error "manifest: a file name outside the checkpoint" "expected rank_RRRRR.safetensors" -- export-hf "$W/traversal/step_00000002" "$W/x"
mkdir -p "$W/latest_empty" && cp -r "$GOOD" "$W/latest_empty/" && : >"$W/latest_empty/latest"
expect_error "an empty latest"              "latest is empty"  -- export-hf "$W/latest_empty" "$W/x"
grep -q "checkpoint.resume=$W/latest_empty/step_00000002" "$ERR" && pass "an empty latest: the error names the complete checkpoint to use" ||
  fail "an empty latest names the checkpoint to use" "$(cat "$ERR")"
mkdir -p "$W/latest_order" && cp -r "$GOOD" "$W/latest_order/step_99999999" && cp -r "$GOOD" "$W/latest_order/step_100000000" &&
  : >"$W/latest_order/latest"
expect_error "an empty latest past step 10^8" "checkpoint.resume=$W/latest_order/step_100000000" -- export-hf "$W/latest_order" "$W/x"
mkdir -p "$W/latest_garbage" && cp -r "$GOOD" "$W/latest_garbage/" && printf '\x00\xff/../x' >"$W/latest_garbage/latest"
expect_error "a garbage latest"             "which is not a directory" -- export-hf "$W/latest_garbage" "$W/x"

# Legacy checksums: a manifest from before the standard FNV-1a basis (key "fnv1a") still loads.
rm -rf "$W/legacy" && mkdir -p "$W/legacy" && cp -r "$GOOD" "$W/legacy/" && echo step_00000002 >"$W/legacy/latest"
$PY - "$W/legacy/step_00000002" <<'PY'
import json, os, sys
d = sys.argv[1]
def fnv_legacy(data):
    h = 0x14650fb0739d0383
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h
m = json.load(open(os.path.join(d, "manifest.json")))
for f in m["files"]:
    f.pop("fnv1a64")
    f["fnv1a"] = "%016x" % fnv_legacy(open(os.path.join(d, f["name"]), "rb").read())
open(os.path.join(d, "manifest.json"), "w").write(json.dumps(m))
PY
expect_loads legacy "a manifest with the old checksum basis (key fnv1a) still loads"

# ---- Megatron .idx ---------------------------------------------------------------------------
# write_idx PREFIX SEQUENCES DOCUMENTS LENGTHS DOC_STARTS: a .bin of sum(LENGTHS) uint16 tokens and
# an .idx whose header claims SEQUENCES and DOCUMENTS (the arrays as given, comma-separated).
write_idx() {
  $PY - "$@" <<'PY'
import struct, sys
prefix, seqs, docs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lengths = [int(x) for x in sys.argv[4].split(",") if x]
starts = [int(x) for x in sys.argv[5].split(",") if x]
open(prefix + ".bin", "wb").write(struct.pack("<%dH" % sum(lengths), *[i % 50 for i in range(sum(lengths))]))
offsets, at = [], 0
for n in lengths:
    offsets.append(at)
    at += 2 * n
with open(prefix + ".idx", "wb") as f:
    f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 8, seqs, docs))
    f.write(struct.pack("<%di" % len(lengths), *lengths) + struct.pack("<%dq" % len(offsets), *offsets))
    f.write(struct.pack("<%dq" % len(starts), *starts))
PY
}
MEGATRON=(train "$W/base.yaml" --set data.source=megatron)
write_idx "$W/idx_ok" 2 3 40,40 0,1,2
run_cli "${MEGATRON[@]}" --set "data.paths=$W/idx_ok"
if (( RC == 0 )); then pass "megatron: a well-formed index trains"; else fail "megatron: a well-formed index trains" "$(head -c 300 "$ERR")"; fi
write_idx "$W/idx_huge" $(( (1 << 62) + 1 )) 3 40,40 0,1,2
expect_error "megatron: a sequence count near 2^62" "sequences"   -- "${MEGATRON[@]}" --set "data.paths=$W/idx_huge"
write_idx "$W/idx_range" 2 3 40,40 0,1,7
expect_error "megatron: a document index out of range" "document index 2 is 7" -- "${MEGATRON[@]}" --set "data.paths=$W/idx_range"
write_idx "$W/idx_negative" 2 3 40,40 0,-1,2
expect_error "megatron: a negative document index" "document index 1 is -1" -- "${MEGATRON[@]}" --set "data.paths=$W/idx_negative"
write_idx "$W/idx_decreasing" 2 4 40,40 0,2,1,2
expect_error "megatron: decreasing document indices" "without decreasing" -- "${MEGATRON[@]}" --set "data.paths=$W/idx_decreasing"

# ---- Hugging Face import -----------------------------------------------------------------------
"$BIN" export-hf "$W/good" "$W/hf" --dtype fp32 >/dev/null 2>&1 || fail "set-up: export-hf" "failed"
# hf_case NAME PYTHON: a copy of the export as $W/hf_NAME, with config (c) and/or safetensors header
# (h, the tensors' JSON) edited by PYTHON.
hf_case() {
  rm -rf "$W/hf_$1" && cp -r "$W/hf" "$W/hf_$1"
  $PY - "$W/hf_$1" "$2" <<'PY' || { echo "$0: hf_case $1 failed" >&2; exit 2; }
import json, os, struct, sys
d, code = sys.argv[1], sys.argv[2]
c = json.load(open(os.path.join(d, "config.json")))
data = open(os.path.join(d, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", data[:8])[0]
h, body = json.loads(data[8:8 + n]), data[8 + n:]
raw = None  # set to write the header text as given
exec(code)
open(os.path.join(d, "config.json"), "w").write(json.dumps(c))
text = (raw if raw is not None else json.dumps(h)).encode()
text += b" " * ((8 - len(text) % 8) % 8)
open(os.path.join(d, "model.safetensors"), "wb").write(struct.pack("<Q", len(text)) + text + body)
PY
}
run_cli import-hf "$W/hf" "$W/imported"
if (( RC == 0 )); then pass "import-hf of an untouched export"; else fail "import-hf of an untouched export" "$(head -c 300 "$ERR")"; fi
K=model.layers.0.self_attn.k_proj.weight O=model.layers.0.self_attn.o_proj.weight
hf_case heads0 "c['num_attention_heads'] = 0"
expect_error "hf: num_attention_heads 0"   "num_attention_heads"  -- import-hf "$W/hf_heads0" "$W/imp"
hf_case mistral "c['model_type'] = 'mistral'"
expect_error "hf: model_type mistral"      "model_type"           -- import-hf "$W/hf_mistral" "$W/imp"
hf_case no_type "del c['model_type']"
expect_error "hf: no model_type"           "model_type"           -- import-hf "$W/hf_no_type" "$W/imp"
hf_case gelu "c['hidden_act'] = 'gelu'"
expect_error "hf: hidden_act gelu"         "hidden_act"           -- import-hf "$W/hf_gelu" "$W/imp"
hf_case bias "c['attention_bias'] = True"
expect_error "hf: attention_bias true"     "attention_bias"       -- import-hf "$W/hf_bias" "$W/imp"
hf_case type "c['hidden_size'] = '32'"
expect_error "hf: a string where a number goes" "hidden_size"     -- import-hf "$W/hf_type" "$W/imp"
hf_case transposed "h['$K']['shape'] = h['$K']['shape'][::-1]"
expect_error "hf: a transposed tensor of the same size" "transposed" -- import-hf "$W/hf_transposed" "$W/imp"
hf_case negative "h['$K']['shape'] = [-16, -32]"
expect_error "hf: a negative shape"        "shape"                -- import-hf "$W/hf_negative" "$W/imp"
hf_case duplicate "raw = json.dumps(h).replace('\"$K\"', '\"$O\"', 1)"
expect_error "hf: a duplicate tensor name" "appears twice"        -- import-hf "$W/hf_duplicate" "$W/imp"
hf_case overlap "h['$K']['data_offsets'] = [h['$K']['data_offsets'][0] - 8, h['$K']['data_offsets'][1] - 8]"
expect_error "hf: overlapping offsets"     "overlaps"             -- import-hf "$W/hf_overlap" "$W/imp"
hf_case fraction "raw = json.dumps(h).replace(json.dumps(h['$K']['data_offsets']), '[%d.5, %d]' % tuple(h['$K']['data_offsets']))"
expect_error "hf: a non-integer offset"    "data_offsets"         -- import-hf "$W/hf_fraction" "$W/imp"

# ---- config ------------------------------------------------------------------------------------
expect_error "config: train.threads=100000"  "logical CPUs"       -- train "$W/base.yaml" --set train.threads=100000
expect_error "config: train.threads=-1"      "train.threads"      -- train "$W/base.yaml" --set train.threads=-1
expect_error "config: model.ffn_dim=-1"      "model.ffn_dim"      -- train "$W/base.yaml" --set model.ffn_dim=-1
expect_error "config: micro_batch_size 1e8"  "GiB of host memory" -- train "$W/base.yaml" --set train.micro_batch_size=100000000
expect_error "config: global_batch_size 2e12" "2^40 tokens"       -- train "$W/base.yaml" --set train.global_batch_size=2000000000000
expect_error "config: model.dim 2^31"        "model.dim"          -- train "$W/base.yaml" --set model.dim=2147483648
expect_error "config: a model too big for the machine" "GiB of host memory" -- train "$W/base.yaml" --set model.dim=65536 --set model.n_layers=64
start=$(date +%s)
expect_error "config: seq_length = max_seq_len = 1e7" "GiB of host memory" -- train "$W/base.yaml" --set model.max_seq_len=10000000 --set train.seq_length=10000000
(( $(date +%s) - start <= 10 )) && pass "config: the 1e7-token config fails at once ($(( $(date +%s) - start )) s)" ||
  fail "config: the 1e7-token config fails at once" "took $(( $(date +%s) - start )) s"
printf 'train: {steps: 2}\ntrain: {steps: 3}\n' >"$W/dup_section.yaml"
expect_error "config: a section twice"       "appears twice"      -- train "$W/dup_section.yaml"
printf 'train:\n  steps: 2\n  steps: 3\n' >"$W/dup_key.yaml"
expect_error "config: a key twice"           "'train.steps' appears twice" -- train "$W/dup_key.yaml"

expect_error "output directory under a file (data prepare)" "Not a directory" -- data prepare "$W/base.yaml" --out "$W/base.yaml/out"
expect_error "output directory under a file (export-hf)" "Not a directory" -- export-hf "$W/good" "$W/base.yaml/out"
expect_error "plan: --gemm-efficiency 0"     "--gemm-efficiency"  -- plan "$W/base.yaml" --gemm-efficiency 0
expect_error "logits: an id past the vocabulary" "not a token id in [0, 64)" -- logits "$W/good" --tokens 1,64 --out "$W/l.safetensors"

# ---- FIFOs, signals, a shared checkpoint.dir, a full metrics disk --------------------------------
mkfifo "$W/fifo.bin"
expect_error "a FIFO as a data path"         "FIFO"               -- train "$W/base.yaml" --set data.source=llmc --set "data.paths=$W/fifo.bin"
expect_error "a FIFO as a config"            "FIFO"               -- train "$W/fifo.bin"
expect_error "a FIFO nothing reads as the metrics file" "FIFO"  -- train "$W/base.yaml" --set "logging.metrics_file=$W/fifo.bin"

# Sampling from a checkpoint a bigger machine trained (train.threads above this machine's CPUs,
# a large batch): logits and generate use one sequence and this machine's threads.
tamper big_machine "t = open(os.path.join(d, 'config.yaml')).read(); open(os.path.join(d, 'config.yaml'), 'w').write(t.replace('threads: 0', 'threads: 100000').replace('micro_batch_size: 2', 'micro_batch_size: 100000000'))"
run_cli logits "$W/big_machine" --tokens 1,2,3 --out "$W/l.safetensors"
if (( RC == 0 )); then pass "logits of a checkpoint from a bigger machine"; else fail "logits of a checkpoint from a bigger machine" "$(head -c 300 "$ERR")"; fi

# A step saved again into the same directory (resume=never) replaces the old one whole.
run_cli train "$W/base.yaml" --set "checkpoint.dir=$W/again"
run_cli train "$W/base.yaml" --set "checkpoint.dir=$W/again" --set checkpoint.resume=never --set train.seed=5
if (( RC == 0 )) && [[ $(<"$W/again/latest") == step_00000002 ]] && ! ls -a "$W/again" | grep -q '^\.step_'; then
  run_cli export-hf "$W/again" "$W/again_hf" --dtype fp32
  if (( RC == 0 )); then pass "a step saved twice: the new one replaces the old, latest loads"; else fail "a step saved twice" "$(head -c 300 "$ERR")"; fi
else fail "a step saved twice" "$(describe_rc): $(ls -a "$W/again") $(head -c 300 "$ERR")"; fi

# SIGTERM during set-up (a 90M-parameter model, whose weights take seconds to draw): exits at once.
BIG=(train "$W/base.yaml" --set model.dim=1024 --set model.n_heads=8 --set model.n_kv_heads=8 --set model.ffn_dim=2816
     --set model.n_layers=2 --set model.vocab_size=32000 --set train.steps=1)
(cd "$RUN_DIR" && exec "$BIN" "${BIG[@]}") >"$OUT" 2>"$ERR" &
pid=$!
sleep 1
kill -TERM "$pid"
t0=$(date +%s%N)
wait "$pid"
RC=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if grep -q '\] step ' "$OUT"; then fail "SIGTERM during set-up" "the run reached a step before the signal: make the set-up longer"
elif (( RC == 143 && ms < 2000 )) && grep -q "stopped by a signal outside the training steps" "$ERR"; then
  pass "SIGTERM during set-up: exits in ${ms} ms with status 143 and says why"
else fail "SIGTERM during set-up" "$(describe_rc) after ${ms} ms: $(head -c 300 "$ERR")"; fi

# A second SIGTERM while a step is still running (a stuck step) ends the run at once, unsaved.
(cd "$RUN_DIR" && exec "$BIN" "${BIG[@]}" --set train.steps=1000 --set "checkpoint.dir=$W/twice") >"$OUT" 2>"$ERR" &
pid=$!
for _ in $(seq 1200); do grep -q '\] step ' "$OUT" && break; sleep 0.1; done
kill -TERM "$pid"; sleep 0.05; kill -TERM "$pid"
wait "$pid"
RC=$?
if (( RC == 143 )) && grep -q "stopped by a second signal" "$ERR" && [[ ! -e $W/twice/latest ]]; then
  pass "a second SIGTERM during a step: exits at once with status 143, nothing published"
else fail "a second SIGTERM during a step" "$(describe_rc): $(head -c 300 "$ERR")"; fi

# Two runs on one checkpoint.dir: the second is refused, naming the first.
"$BIN" train "$W/base.yaml" --set train.steps=100000 --set "checkpoint.dir=$W/shared" >"$W/first.out" 2>&1 &
first=$!
for _ in $(seq 300); do grep -q '\] step ' "$W/first.out" && break; sleep 0.1; done
expect_error "a second run on a checkpoint.dir in use" "in use by another run (process $first on host" -- train "$W/base.yaml" --set "checkpoint.dir=$W/shared"
kill -TERM "$first"; wait "$first"
run_cli train "$W/base.yaml" --set train.steps=1 --set "checkpoint.dir=$W/shared" --set checkpoint.resume=never
if (( RC == 0 )); then pass "the lock goes with the run that held it"; else fail "lock released" "$(head -c 300 "$ERR")"; fi

expect_error "a metrics file on a full disk (/dev/full)" "No space left on device" -- train "$W/base.yaml" --set logging.metrics_file=/dev/full

# ---- data inspect ---------------------------------------------------------------------------------
$PY - "$W/wide.bin" <<'PY'
import struct, sys
ids = [3000000000, 5, 4294967295]
open(sys.argv[1], "wb").write(struct.pack("<256i", 20240801, 7, len(ids), *[0] * 253) + struct.pack("<%dI" % len(ids), *ids))
PY
run_cli data inspect "$W/wide.bin"
if (( RC == 0 )) && grep -q "max id:    4294967295 " "$OUT" && grep -q "first:     3000000000 5 4294967295" "$OUT" && grep -q "at least 4294967296" "$OUT"; then
  pass "data inspect: uint32 ids above 2^31 as they are, and the vocab size they need"
else fail "data inspect of uint32 ids" "$(describe_rc): $(cat "$OUT" "$ERR" | head -c 400)"; fi

finish
