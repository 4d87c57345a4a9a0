#!/usr/bin/env python3
"""Tokenize text with a Hugging Face tokenizer.json into llm.c shards and/or a Megatron indexed dataset.

A .txt INPUT is one document; a .jsonl INPUT holds one document per line in its "text" field; an EOS
id follows every document. Workers tokenize whole input files into temporary uint32 part files that
are concatenated in INPUT order, so the output does not depend on --workers and memory stays bounded.
Off a terminal, per-file progress goes to stdout so that stderr holds nothing but an error line.
"""
import argparse
import json
import multiprocessing
import os
import shutil
import struct
import sys
import tempfile
from array import array
from itertools import accumulate

try:
    from tokenizers import Tokenizer
except ImportError:
    sys.exit("prepare_hf: error: the tokenizers package is missing: pip install tokenizers")

EOS_CANDIDATES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>")
CHUNK_TOKENS = 1 << 22  # tokens read from a part file at a time: bounds memory
INT32_MAX = 2**31 - 1


class InputError(Exception):
    """A problem with the user's input, reported as one error line."""


def one_line(exc):
    return " ".join(str(exc).split())


def write_le(f, arr):
    """Write an array little-endian, whatever the host's byte order."""
    if sys.byteorder == "big":
        arr = array(arr.typecode, arr)
        arr.byteswap()
    arr.tofile(f)


_tokenizer, _eos = None, None  # set in each worker process


def init_worker(tokenizer_path, eos):
    global _tokenizer, _eos
    _tokenizer, _eos = Tokenizer.from_file(tokenizer_path), eos


def read_documents(path):
    """Yield the documents of one input file."""
    with open(path, encoding="utf-8") as f:
        if path.endswith(".txt"):
            text = f.read()
            if text:  # an empty .txt file holds no document
                yield text
            return
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue  # blank lines (e.g. a doubled trailing newline) are not documents
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}: line {lineno}: not valid JSON ({e})") from None
            text = obj.get("text") if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise InputError(f'{path}: line {lineno}: no string "text" field')
            yield text


def part_path(tmpdir, index):
    return os.path.join(tmpdir, f"part_{index:06d}.u32")


def tokenize_file(job):
    """Tokenize one input file into its part file; return its document lengths and largest id."""
    index, path, tmpdir = job
    lengths, max_id = array("q"), 0
    try:
        with open(part_path(tmpdir, index), "wb") as out:
            for text in read_documents(path):
                ids = array("I", _tokenizer.encode(text, add_special_tokens=False).ids)
                ids.append(_eos)
                max_id = max(max_id, max(ids))
                ids.tofile(out)  # native order: only this program reads part files
                lengths.append(len(ids))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid UTF-8 text") from None
    except OSError as e:
        raise InputError(f"{path}: {one_line(e)}") from None
    return index, path, lengths, max_id


class Progress:
    """Files done / total and tokens so far: a redrawn bar on a terminal, else one stdout line per file."""

    def __init__(self, total):
        self.total, self.done, self.tokens = total, 0, 0
        self.tty = sys.stderr.isatty()

    def update(self, path, docs, tokens):
        self.done += 1
        self.tokens += tokens
        if self.tty:
            bar = "#" * (30 * self.done // self.total)
            sys.stderr.write(f"\r[{bar:.<30}] {self.done}/{self.total} files, {self.tokens:,} tokens")
            sys.stderr.flush()
        else:
            print(f"prepare_hf: [{self.done}/{self.total}] {path}: {docs} documents, {tokens} tokens", flush=True)

    def close(self):
        if self.tty and self.done:
            sys.stderr.write("\n")


class LlmcWriter:
    """Cuts the token stream into llm.c shards of at most shard_tokens tokens each."""

    def __init__(self, out, name, narrow, total, shard_tokens):
        self.magic, self.version = (20240520, 1) if narrow else (20240801, 7)
        self.pattern = os.path.join(out, name + "_{:06d}.bin")
        self.left, self.shard_tokens = total, shard_tokens
        self.paths, self.file, self.room = [], None, 0

    def write(self, chunk):
        start = 0
        while start < len(chunk):
            if self.room == 0:
                self.open_next()
            end = min(len(chunk), start + self.room)
            write_le(self.file, chunk[start:end])
            self.room -= end - start
            start = end

    def open_next(self):
        self.close()
        ntok = min(self.shard_tokens, self.left)  # known up front, so the header is written once
        self.left -= ntok
        self.room = ntok
        self.paths.append(self.pattern.format(len(self.paths)))
        self.file = open(self.paths[-1], "wb")
        self.file.write(struct.pack("<3i", self.magic, self.version, ntok) + bytes(4 * (256 - 3)))

    def close(self):
        if self.file:
            self.file.close()
        return self.paths


class MegatronWriter:
    """Writes NAME.bin (all tokens) and NAME.idx (one sequence per document)."""

    def __init__(self, out, name, narrow, lengths):
        self.prefix, self.lengths = os.path.join(out, name), lengths
        self.token_bytes, self.dtype_code = (2, 8) if narrow else (4, 4)  # uint16 / int32
        self.file = open(self.prefix + ".bin", "wb")

    def write(self, chunk):
        write_le(self.file, chunk)

    def close(self):
        self.file.close()
        n = len(self.lengths)
        offsets = array("q", accumulate((k * self.token_bytes for k in self.lengths), initial=0))
        with open(self.prefix + ".idx", "wb") as f:
            f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, self.dtype_code, n, n + 1))
            write_le(f, array("i", self.lengths))
            write_le(f, offsets[:n])
            write_le(f, array("q", range(n + 1)))
        return [self.prefix + ".bin", self.prefix + ".idx"]


def token_chunks(tmpdir, nparts, narrow):
    """Yield the dataset's tokens in INPUT order, as arrays of the output dtype."""
    for index in range(nparts):
        with open(part_path(tmpdir, index), "rb") as f:
            while data := f.read(4 * CHUNK_TOKENS):
                chunk = array("I", data)
                # uint32 ids < 2**31 have the same bytes as int32, so only uint16 needs converting
                yield array("H", chunk) if narrow else chunk


def load_tokenizer(path):
    try:
        return Tokenizer.from_file(path)
    except Exception as e:  # the tokenizers package raises plain Exception
        raise InputError(f"{path}: cannot load tokenizer ({one_line(e)})") from None


def find_eos(tokenizer, path):
    for token in EOS_CANDIDATES:
        if tokenizer.token_to_id(token) is not None:
            return tokenizer.token_to_id(token)
    raise InputError(f"{path}: none of {', '.join(EOS_CANDIDATES)} is in the vocabulary; pass --eos-id")


def check_inputs(paths):
    for path in paths:
        if not path.endswith((".txt", ".jsonl")):
            raise InputError(f"{path}: unsupported input type (expected .txt or .jsonl)")
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such file")


def tokenize_all(args, eos, tmpdir):
    """Tokenize every input file; return [(document lengths, largest id)] in INPUT order."""
    jobs = [(i, path, tmpdir) for i, path in enumerate(args.inputs)]
    results = [None] * len(jobs)
    progress = Progress(len(jobs))
    try:
        with multiprocessing.Pool(min(args.workers, len(jobs)), init_worker, (args.tokenizer, eos)) as pool:
            for index, path, lengths, max_id in pool.imap_unordered(tokenize_file, jobs):
                results[index] = (lengths, max_id)
                progress.update(path, len(lengths), sum(lengths))
    finally:
        progress.close()
    return results


def write_outputs(args, results, tmpdir):
    lengths = array("q", (k for file_lengths, _ in results for k in file_lengths))
    narrow = max(max_id for _, max_id in results) < 65536
    writers = []
    if args.format in ("llmc", "both"):
        writers.append(LlmcWriter(args.out, args.name, narrow, sum(lengths), args.shard_tokens))
    if args.format in ("megatron", "both"):
        writers.append(MegatronWriter(args.out, args.name, narrow, lengths))
    for chunk in token_chunks(tmpdir, len(results), narrow):
        for writer in writers:
            writer.write(chunk)
    return [path for writer in writers for path in writer.close()]


def write_record(args, eos, files):
    """<name>.dataset.json beside the files, as `llamatron data prepare` writes it: the
    end-of-document id data.eod_id defaults to (include/llamatron/documents.h)."""
    record = {"tokenizer": os.path.basename(args.tokenizer), "eod_id": eos,
              "files": [os.path.basename(f) for f in files]}
    with open(os.path.join(args.out, f"{args.name}.dataset.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")


def run(args):
    check_inputs(args.inputs)
    tokenizer = load_tokenizer(args.tokenizer)  # also with --eos-id: fail here, not inside a worker
    eos = args.eos_id if args.eos_id is not None else find_eos(tokenizer, args.tokenizer)
    try:
        os.makedirs(args.out, exist_ok=True)
        tmpdir = tempfile.mkdtemp(prefix=f".{args.name}-parts-", dir=args.out)
    except OSError as e:
        raise InputError(f"{args.out}: cannot create output directory ({one_line(e)})") from None
    try:
        results = tokenize_all(args, eos, tmpdir)
        docs = sum(len(lengths) for lengths, _ in results)
        if docs == 0:
            raise InputError(f"empty dataset: no documents in {', '.join(args.inputs)}")
        files = write_outputs(args, results, tmpdir)
        write_record(args, eos, files)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    tokens = sum(sum(lengths) for lengths, _ in results)
    return f"prepare_hf: {docs} documents, {tokens} tokens, {len(files)} files written to {args.out}"


def int_in(low, high):
    def parse(text):
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in [{low}, {high}]")
        return value
    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(prog="prepare_hf", description=__doc__.split("\n")[0])
    p.add_argument("--tokenizer", required=True, help="Hugging Face tokenizer.json")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--name", default="data", help="output file name prefix (default: data)")
    p.add_argument("--format", choices=("llmc", "megatron", "both"), default="llmc")
    p.add_argument("--shard-tokens", type=int_in(1, INT32_MAX), default=100_000_000,
                   help="most tokens per llm.c shard (default: 100000000)")
    p.add_argument("--workers", type=int_in(1, 4096), default=os.cpu_count() or 1,
                   help="processes tokenizing input files in parallel (default: CPU count)")
    p.add_argument("--eos-id", type=int_in(0, INT32_MAX), help="EOS id (default: from the vocabulary)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".txt (one document) or .jsonl (a 'text' per line)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        summary = run(args)
    except InputError as e:
        print(f"prepare_hf: error: {e}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
