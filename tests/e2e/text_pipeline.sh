#!/usr/bin/env bash
# From raw text to a training run: `llamatron data filter` against a Python implementation of its
# rules, `data dedup` against datasketch and exact Jaccard, dedup under mpirun = one process, .gz and
# .zst inputs, bad inputs, then /usr/share/doc text -> filter -> dedup -> tools/train_tokenizer.py ->
# tools/prepare_hf.py -> a short training run whose loss falls. datasketch and tokenizers come from
# PyPI into WORKDIR/../tools-venv; if that fails the test fails, it does not skip.
#
# Usage: text_pipeline.sh PATH_TO_llamatron MPIEXEC WORKDIR SOURCE_DIR      (CTest: text_pipeline)
set -u
BIN=$1 MPIEXEC=$2 SRC=$4
source "$SRC/tests/e2e/lib.sh"
cli_workdir "$BIN" "$3"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

# ---- the filter's rules, one document at a time, against tests/tools/filter_ref.py -----------------
/usr/bin/python3 "$SRC/tests/tools/filter_ref.py" "$BIN" "$W/filter_ref" >"$W/filter_ref.out" 2>&1
rc=$?
check "filter: every verdict, value and report count = the Python reference" '[ $rc -eq 0 ]' "$(tail -8 "$W/filter_ref.out")"
cat "$W/filter_ref.out"

PY=$(tools_venv "$W" datasketch) || { fail "datasketch and tokenizers from PyPI" "pip install failed: $(tail -3 "$W/pip.out" 2>/dev/null)"; finish; }

# ---- dedup against datasketch ------------------------------------------------------------------------
"$PY" "$SRC/tests/tools/dedup_ref.py" "$BIN" "$W/dedup_ref" >"$W/dedup_ref.out" 2>&1
rc=$?
check "dedup: bands/rows, pairs, recall and kept set against datasketch and exact Jaccard" '[ $rc -eq 0 ]' "$(tail -8 "$W/dedup_ref.out")"
cat "$W/dedup_ref.out"
CORPUS=$W/dedup_ref/corpus.jsonl

# ---- the same result however it runs ----------------------------------------------------------------
same_output() {  # DIR_A DIR_B: the same shards, duplicates and pairs, and the same report but its time
  local f
  for f in "$1"/data_*.jsonl "$1"/duplicates.jsonl "$1"/pairs.tsv; do cmp -s "$f" "$2/${f##*/}" || return 1; done
  diff <(grep -v '"seconds"' "$1/report.json") <(grep -v '"seconds"' "$2/report.json") >/dev/null
}
dedup_out() { "$BIN" data dedup "$CORPUS" --write-duplicates --write-pairs --shard-bytes 100000 "$@" >"$W/dedup.out" 2>&1; }
dedup_out --out "$W/d1"
check "dedup writes shards, report, duplicates and pairs" \
  '[ -f "$W/d1/data_000001.jsonl" ] && [ -s "$W/d1/duplicates.jsonl" ] && [ -s "$W/d1/pairs.tsv" ] && grep -q "cluster sizes:" "$W/dedup.out"' \
  "$(cat "$W/dedup.out")"
for np in 2 3; do
  "$MPIEXEC" -np $np "$BIN" data dedup "$CORPUS" --out "$W/d_np$np" --write-duplicates --write-pairs --shard-bytes 100000 >"$W/dedup_np.out" 2>&1
  rc=$?
  check "dedup under mpirun -np $np = one process (shards, duplicates, pairs, report)" \
    '[ $rc -eq 0 ] && same_output "$W/d1" "$W/d_np$np" && grep -q "($np rank(s))" "$W/dedup_np.out"' "$(tail -5 "$W/dedup_np.out")"
done
dedup_out --out "$W/d_p1" --partitions 1 --tmp "$W/scratch"
check "one band-table partition and another scratch directory: the same result, no scratch left" \
  'same_output "$W/d1" "$W/d_p1" && [ -z "$(ls -A "$W/scratch")" ] && [ -z "$(compgen -G "$W/d1/.*tmp*")" ]' "$(cat "$W/dedup.out")"
gzip -c "$CORPUS" >"$W/corpus.jsonl.gz" && zstd -q -c "$CORPUS" >"$W/corpus.jsonl.zst"
"$BIN" data dedup "$W/corpus.jsonl.gz" --out "$W/d_gz" >/dev/null 2>&1 && "$BIN" data dedup "$W/corpus.jsonl.zst" --out "$W/d_zst" >/dev/null 2>&1
check ".jsonl.gz and .jsonl.zst inputs give the .jsonl output" \
  'cmp -s <(cat "$W"/d_gz/data_*.jsonl) <(cat "$W"/d1/data_*.jsonl) && cmp -s <(cat "$W"/d_zst/data_*.jsonl) <(cat "$W"/d1/data_*.jsonl)'
dedup_out --out "$W/d_long" --keep longest
"$PY" - "$CORPUS" "$W/d_long/duplicates.jsonl" >"$W/longest.out" 2>&1 <<'PY'
import json, sys
size = [len(json.loads(l)["text"].encode()) for l in open(sys.argv[1])]
bad = [d for d in map(json.loads, open(sys.argv[2])) if size[d["duplicate_of"]] < size[d["doc"]]]
print(f"{len(bad)} removed documents longer than the one kept")
sys.exit(1 if bad else 0)
PY
rc=$?
check "--keep longest keeps the longest document of each cluster" '[ $rc -eq 0 ]' "$(cat "$W/longest.out")"
"$BIN" data dedup "$CORPUS" --out "$W/d_exact" --exact-only >"$W/dedup.out" 2>&1
copies=$(/usr/bin/python3 - "$CORPUS" <<'PY'
import json, sys
seen, copies = set(), 0
for line in open(sys.argv[1]):
    text = json.loads(line)["text"].lower().split()  # ASCII corpus: str.split is the White_Space split
    copies += " ".join(text) in seen
    seen.add(" ".join(text))
print(copies)
PY
)
check "--exact-only removes the exact copies (up to case and white space), $copies of them, only" \
  'grep -q "\"near_duplicates_removed\": 0," "$W/d_exact/report.json" && grep -q "\"exact_duplicates_removed\": $copies," "$W/d_exact/report.json" && (( copies > 20 ))' \
  "$(head -9 "$W/d_exact/report.json")"

# ---- bad input: one line naming the file (and line), nothing left in --out ------------------------------
mkdir -p "$W/bad"
printf '{"text": "fine"}\n{"text": "broken\n' >"$W/bad/broken.jsonl"
printf '{"text": "fine"}\n\n{"title": "no text"}\n' >"$W/bad/notext.jsonl"
printf '{"text": 5}\n' >"$W/bad/number.jsonl"
: >"$W/bad/empty.jsonl"
head -c 3000 "$W/corpus.jsonl.gz" >"$W/bad/cut.jsonl.gz"
head -c 3000 "$W/corpus.jsonl.zst" >"$W/bad/cut.jsonl.zst"
printf 'not zstd at all' >"$W/bad/junk.jsonl.zst"
echo "some text" >"$W/bad/doc.md"
echo "x" >"$W/bad/unreadable.txt" && chmod 000 "$W/bad/unreadable.txt"
for cmd in filter dedup; do
  out=$W/bad_out_$cmd
  expect_error "$cmd: a line that is not JSON names file:line" "broken.jsonl:2: not a JSON object" -- data $cmd "$W/bad/broken.jsonl" --out "$out"
  expect_error "$cmd: a line without a text field names file:line" "notext.jsonl:3: no string \"text\" field" -- data $cmd "$W/bad/notext.jsonl" --out "$out"
  expect_error "$cmd: a text that is not a string" "number.jsonl:1: no string" -- data $cmd "$W/bad/number.jsonl" --out "$out"
  expect_error "$cmd: an empty corpus" "hold no documents" -- data $cmd "$W/bad/empty.jsonl" --out "$out"
  expect_error "$cmd: a truncated .gz" "cut.jsonl.gz is not a complete gzip stream" -- data $cmd "$W/bad/cut.jsonl.gz" --out "$out"
  expect_error "$cmd: a truncated .zst" "cut.jsonl.zst is not a complete zstd stream" -- data $cmd "$W/bad/cut.jsonl.zst" --out "$out"
  expect_error "$cmd: a file that is not zstd" "junk.jsonl.zst is not a valid zstd stream" -- data $cmd "$W/bad/junk.jsonl.zst" --out "$out"
  expect_error "$cmd: an unknown extension" "doc.md: unknown kind" -- data $cmd "$W/bad/doc.md" --out "$out"
  expect_error "$cmd: a missing file" "missing.jsonl does not exist" -- data $cmd "$W/bad/missing.jsonl" --out "$out"
  if [ "$(id -u)" -ne 0 ]; then
    expect_error "$cmd: an unreadable file" "unreadable.txt" -- data $cmd "$W/bad/unreadable.txt" --out "$out"
  fi
  expect_error "$cmd: --out is a file" "cannot create the output directory" -- data $cmd "$CORPUS" --out "$W/bad/doc.md"
  check "$cmd: nothing half-written after the errors" '[ -z "$(ls -A "$out" 2>/dev/null)" ]' "$(ls -A "$out")"
done
cp -r "$W/d1" "$W/d1_before"
expect_error "dedup: an --out holding an earlier run is refused" "already holds" -- data dedup "$CORPUS" --out "$W/d1"
check "...and that earlier output is untouched" 'diff -r "$W/d1" "$W/d1_before" >/dev/null' "$(diff -r "$W/d1" "$W/d1_before" | head -3)"
"$MPIEXEC" -np 2 "$BIN" data dedup "$W/bad/broken.jsonl" --out "$W/bad_np" >"$W/np_err.out" 2>&1
rc=$?
check "dedup under mpirun: a bad line is one error, no crash" \
  '[ $rc -ne 0 ] && [ "$(grep -c "broken.jsonl:2: not a JSON object" "$W/np_err.out")" -eq 1 ] && [ -z "$(crash_sign "$W/np_err.out")" ]' "$(cat "$W/np_err.out")"
# A bad line past the first batch (4096 documents) is read while an earlier batch is being hashed.
{ for i in 1 2 3 4 5; do cat "$CORPUS"; done; echo '{"text": "broken'; head -10 "$CORPUS"; } >"$W/bad/late.jsonl"  # 5000 good lines first
for np in 1 2; do
  "$MPIEXEC" -np $np "$BIN" data dedup "$W/bad/late.jsonl" --out "$W/bad_late$np" >"$W/late.out" 2>&1
  rc=$?
  check "dedup (-np $np): a bad line read during hashing is one error naming file:line, nothing written" \
    '[ $rc -ne 0 ] && [ "$(grep -c "late.jsonl:5001: not a JSON object" "$W/late.out")" -eq 1 ] && [ -z "$(crash_sign "$W/late.out")" ] && [ -z "$(ls -A "$W/bad_late$np" 2>/dev/null)" ]' \
    "$(cat "$W/late.out")"
done
expect_error "dedup: --bands without --rows" "--bands and --rows go together" -- data dedup "$CORPUS" --out "$W/x" --bands 4
expect_error "dedup: bands x rows above --num-perm" "exceeds --num-perm" -- data dedup "$CORPUS" --out "$W/x" --bands 20 --rows 10
expect_error "dedup: a threshold outside (0, 1)" "--threshold must be in (0, 1)" -- data dedup "$CORPUS" --out "$W/x" --threshold 1.5

# ---- raw text to a training run ---------------------------------------------------------------------------
/usr/bin/python3 - "$W/raw" <<'PY'
import json, os, sys
# Debian's documentation, as a crawl would deliver it: one JSON line per file, a few MB.
os.makedirs(sys.argv[1])
n = size = 0
with open(os.path.join(sys.argv[1], "debian.jsonl"), "w") as out:
    for root, _, files in sorted(os.walk("/usr/share/doc")):
        for f in sorted(files):
            p = os.path.join(root, f)
            if f.endswith(".gz") or os.path.islink(p) or not os.path.isfile(p):
                continue
            text = open(p, "rb").read(400000).decode("utf-8", "replace")
            out.write(json.dumps({"text": text, "path": p}) + "\n")
            n, size = n + 1, size + len(text)
            if size > 6e6:
                break
        if size > 6e6:
            break
print(n, "documents", size, "characters")
PY
"$BIN" data filter "$W/raw/debian.jsonl" --out "$W/filtered" >"$W/filter.out" 2>&1 &&
  "$BIN" data dedup "$W"/filtered/data_*.jsonl --out "$W/deduped" >"$W/dedup.out" 2>&1
rc=$?
check "Debian's documentation: filter, then dedup" '[ $rc -eq 0 ] && [ -s "$W/deduped/data_000000.jsonl" ]' "$(cat "$W/filter.out" "$W/dedup.out")"
cat "$W/filter.out" "$W/dedup.out"
"$PY" "$SRC/tools/train_tokenizer.py" "$W"/deduped/data_*.jsonl --out "$W/tokenizer.json" --vocab-size 512 >"$W/tok.out" 2>&1 &&
  "$PY" "$SRC/tools/prepare_hf.py" --tokenizer "$W/tokenizer.json" --out "$W/shards" --shard-tokens 200000 "$W"/deduped/data_*.jsonl >"$W/prep.out" 2>&1
rc=$?
check "train_tokenizer.py, then prepare_hf.py, on the kept documents" '[ $rc -eq 0 ] && [ -f "$W/shards/data_000001.bin" ] && grep -q "id 0" "$W/tok.out"' \
  "$(cat "$W/tok.out" "$W/prep.out")"
cat >"$W/train.yaml" <<YAML
model: {vocab_size: 512, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 128, max_seq_len: 64}
optimizer: {lr: 3.0e-3}
schedule: {warmup_steps: 5}
data: {source: llmc, paths: "$W/shards/data_*.bin"}
train: {steps: 60, micro_batch_size: 8, seq_length: 64, threads: 2}
logging: {log_every: 1, metrics_file: $W/metrics.jsonl}
YAML
"$BIN" train "$W/train.yaml" >"$W/train.out" 2>&1
/usr/bin/python3 - "$W/metrics.jsonl" "$W"/shards/data_*.bin >"$W/loss.out" 2>&1 <<'PY'
import collections, json, math, struct, sys
# The entropy of the tokens' frequencies: a model below it uses context, not only token counts.
count = collections.Counter()
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    magic, version, n = struct.unpack("<3i", data[:12])
    width = 2 if version == 1 else 4
    count.update(struct.unpack(f"<{n}{'H' if width == 2 else 'I'}", data[1024:1024 + n * width]))
total = sum(count.values())
unigram = -sum(c / total * math.log(c / total) for c in count.values())
loss = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"loss"' in l]
first, last = sum(loss[:5]) / 5, sum(loss[-5:]) / 5
print(f"loss: first 5 steps {first:.3f}, last 5 {last:.3f}; unigram entropy of the {total} training tokens {unigram:.3f}")
sys.exit(0 if len(loss) == 60 and last < unigram < first else 1)
PY
rc=$?
check "a training run on the result: the loss falls below the tokens' unigram entropy" '[ $rc -eq 0 ]' "$(cat "$W/loss.out"; tail -3 "$W/train.out")"
cat "$W/loss.out"

# ---- train_tokenizer.py's own errors ------------------------------------------------------------------
"$PY" "$SRC/tools/train_tokenizer.py" "$W/bad/broken.jsonl" --out "$W/t.json" >"$W/tok_err.out" 2>&1
rc=$?
check "train_tokenizer: a bad line is one error naming file:line, no tokenizer written" \
  '[ $rc -ne 0 ] && grep -q "^train_tokenizer: error: .*broken.jsonl:2: not a JSON object" "$W/tok_err.out" && [ ! -e "$W/t.json" ]' "$(cat "$W/tok_err.out")"
"$PY" "$SRC/tools/train_tokenizer.py" "$CORPUS" --out "$W/t.json" --vocab-size 100 >"$W/tok_err.out" 2>&1
rc=$?
check "train_tokenizer: a vocabulary below the byte symbols is refused" '[ $rc -ne 0 ] && grep -q "below the 256 byte symbols" "$W/tok_err.out"' "$(cat "$W/tok_err.out")"
LLAMATRON_TOOLS_VENV=$(dirname "$(dirname "$PY")") /usr/bin/python3 "$SRC/tools/train_tokenizer.py" "$CORPUS" --out "$W/t2.json" --vocab-size 300 >"$W/tok_venv.out" 2>&1
rc=$?
check "train_tokenizer: run by an interpreter without tokenizers, it runs itself in the tools venv" \
  '[ $rc -eq 0 ] && [ -f "$W/t2.json" ]' "$(cat "$W/tok_venv.out")"

finish
