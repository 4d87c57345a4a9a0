#!/usr/bin/env python3
"""Test tools/prepare_hf.py end to end: python3 tests/tools/test_prepare_hf.py

Trains a tiny BPE tokenizer, runs the tool on a .jsonl and a .txt input, and reads the llm.c shards
and the Megatron .bin/.idx back with readers written here (not the tool's code).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest
from array import array

try:
    import tokenizers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
except ImportError:
    tokenizers = None

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "prepare_hf.py")
SHARD_TOKENS = 16

TRAINING = [
    "the quick brown fox jumps over the lazy dog",
    "a tokenizer splits text into tokens and tokens into ids",
    "Grüße aus Köln und naïve café au lait",
    "東京 と 大阪 は 日本 の 都市 です",
]
JSONL_DOCS = [
    "the lazy dog sleeps",
    "naïve café: Grüße aus Köln 🚀",
    "tokens and ids\nover two lines",
    "東京 の tokenizer",
]
TXT_DOC = "The quick brown fox.\nÜber den Fluss — 大阪 😀\n\nthe end\n"


def le_array(typecode, data):
    arr = array(typecode, data)
    if sys.byteorder == "big":
        arr.byteswap()
    return arr


def read_llmc_shard(test, path):
    """Return (magic, version, tokens) of an llm.c shard, checking the header's padding and the file size."""
    with open(path, "rb") as f:
        data = f.read()
    header = struct.unpack("<256i", data[:1024])
    magic, version, ntok = header[:3]
    test.assertEqual(header[3:], (0,) * 253, path)
    token_bytes = {20240520: 2, 20240801: 4}[magic]
    test.assertEqual(len(data), 1024 + ntok * token_bytes, path)
    return magic, version, list(le_array("H" if token_bytes == 2 else "I", data[1024:]))


def read_megatron(test, prefix):
    """Return (dtype code, [tokens of each sequence], document indices) of a Megatron indexed dataset."""
    with open(prefix + ".idx", "rb") as f:
        idx = f.read()
    test.assertEqual(idx[:9], b"MMIDIDX\x00\x00")
    version, code, nseq, ndoc = struct.unpack("<QBQQ", idx[9:34])
    test.assertEqual(version, 1)
    test.assertEqual(len(idx), 34 + 4 * nseq + 8 * nseq + 8 * ndoc)
    sizes = le_array("i", idx[34:34 + 4 * nseq])
    pointers = le_array("q", idx[34 + 4 * nseq:34 + 12 * nseq])
    doc_idx = list(le_array("q", idx[34 + 12 * nseq:]))
    typecode, token_bytes = {8: ("H", 2), 4: ("i", 4)}[code]
    with open(prefix + ".bin", "rb") as f:
        data = f.read()
    test.assertEqual(len(data), sum(sizes) * token_bytes)
    seqs = [list(le_array(typecode, data[p:p + n * token_bytes])) for p, n in zip(pointers, sizes)]
    return code, seqs, doc_idx


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)


class PrepareHfTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if tokenizers is None:
            raise AssertionError("the tokenizers package is missing: pip install tokenizers")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.tokenizer_path = os.path.join(cls.dir, "tokenizer.json")
        cls.tokenizer = cls.train_tokenizer(["<unk>", "</s>"], cls.tokenizer_path)
        cls.jsonl = cls.write("docs.jsonl", "".join(json.dumps({"text": t, "id": i}, ensure_ascii=i % 2 == 0) + "\n"
                                                    for i, t in enumerate(JSONL_DOCS)))
        cls.txt = cls.write("doc.txt", TXT_DOC)
        # INPUT order is jsonl then txt: the output must follow it, not the file names
        cls.docs = JSONL_DOCS + [TXT_DOC]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def train_tokenizer(cls, special_tokens, path):
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(special_tokens=special_tokens, vocab_size=200, show_progress=False)
        tok.train_from_iterator(TRAINING, trainer)
        tok.save(path)
        return tok

    @classmethod
    def write(cls, name, text):
        path = os.path.join(cls.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def expected(self, eos):
        return [self.tokenizer.encode(d, add_special_tokens=False).ids + [eos] for d in self.docs]

    def prepare(self, out, *extra):
        result = run_tool("--tokenizer", self.tokenizer_path, "--out", out, "--format", "both",
                          "--shard-tokens", str(SHARD_TOKENS), *extra, self.jsonl, self.txt)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        return result

    def check_outputs(self, out, docs, wide, eos):
        flat = [t for doc in docs for t in doc]
        nshards = -(-len(flat) // SHARD_TOKENS)
        self.assertGreater(nshards, 2, "the test data must span several shards")
        shards = [f"data_{i:06d}.bin" for i in range(nshards)]
        self.assertEqual(sorted(os.listdir(out)), sorted(shards + ["data.bin", "data.idx", "data.dataset.json"]))
        # The record data.eod_id defaults to (llamatron's include/llamatron/documents.h): the EOS
        # appended to every document, and every file written.
        with open(os.path.join(out, "data.dataset.json")) as f:
            record = json.load(f)
        self.assertEqual(record["eod_id"], eos)
        self.assertEqual(sorted(record["files"]), sorted(shards + ["data.bin", "data.idx"]))
        tokens = []
        for i, name in enumerate(shards):
            magic, version, shard = read_llmc_shard(self, os.path.join(out, name))
            self.assertEqual((magic, version), (20240801, 7) if wide else (20240520, 1))
            self.assertEqual(len(shard), min(SHARD_TOKENS, len(flat) - i * SHARD_TOKENS))
            tokens += shard
        self.assertEqual(tokens, flat)
        code, seqs, doc_idx = read_megatron(self, os.path.join(out, "data"))
        self.assertEqual(code, 4 if wide else 8)
        self.assertEqual(seqs, docs)
        self.assertEqual(doc_idx, list(range(len(docs) + 1)))

    def test_outputs_match_the_tokenizer(self):
        out = os.path.join(self.dir, "out_both")
        result = self.prepare(out, "--workers", "2")
        eos = self.tokenizer.token_to_id("</s>")
        docs = self.expected(eos)
        self.check_outputs(out, docs, wide=False, eos=eos)
        summary = result.stdout.splitlines()[-1]
        self.assertIn(f"{len(docs)} documents", summary)
        self.assertIn(f"{sum(map(len, docs))} tokens", summary)

    def test_large_eos_id_gives_32_bit_tokens(self):
        out = os.path.join(self.dir, "out_wide")
        self.prepare(out, "--workers", "2", "--eos-id", "70000")
        self.check_outputs(out, self.expected(70000), wide=True, eos=70000)

    def test_output_does_not_depend_on_workers(self):
        outs = [os.path.join(self.dir, f"out_workers{k}") for k in (1, 2)]
        for out, k in zip(outs, (1, 2)):
            self.prepare(out, "--workers", str(k))
        names = sorted(os.listdir(outs[0]))
        self.assertEqual(names, sorted(os.listdir(outs[1])))
        for name in names:
            with open(os.path.join(outs[0], name), "rb") as a, open(os.path.join(outs[1], name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)

    def assert_error(self, result, *needles):
        self.assertEqual(result.returncode, 1, result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith("prepare_hf: error:"), lines[0])
        for needle in needles:
            self.assertIn(needle, lines[0])

    def run_on(self, *inputs, tokenizer=None):
        out = os.path.join(self.dir, "out_bad")
        return run_tool("--tokenizer", tokenizer or self.tokenizer_path, "--out", out, *inputs)

    def test_missing_input_file(self):
        missing = os.path.join(self.dir, "no_such_file.jsonl")
        self.assert_error(self.run_on(self.txt, missing), missing)

    def test_jsonl_line_without_text(self):
        bad = self.write("bad.jsonl", '{"text": "fine"}\n{"body": "no text here"}\n')
        self.assert_error(self.run_on(bad), bad, "line 2", "text")

    def test_empty_dataset(self):
        empty = self.write("empty.jsonl", "")
        self.assert_error(self.run_on(empty), "empty")

    def test_unreadable_tokenizer(self):
        broken = self.write("broken_tokenizer.json", "{not json")
        self.assert_error(self.run_on(self.txt, tokenizer=broken), broken)

    def test_tokenizer_without_eos_needs_eos_id(self):
        path = os.path.join(self.dir, "no_eos_tokenizer.json")
        self.train_tokenizer(["<unk>"], path)
        self.assert_error(self.run_on(self.txt, tokenizer=path), "--eos-id")


if __name__ == "__main__":
    unittest.main(verbosity=2)
