#!/usr/bin/env python3
"""Train a byte-level BPE tokenizer (Hugging Face tokenizers) on text, for tools/prepare_hf.py.

A .txt INPUT is one document; a .jsonl (or .jsonl.gz) INPUT holds one document per line in its "text"
field, as `llamatron data filter` and `data dedup` write them. Writes a tokenizer.json whose special
tokens come first (ids 0, 1, ...: the EOS, then --special ones), followed by the 256 byte symbols and
the merges; tools/prepare_hf.py appends that EOS after every document. Runs itself inside the project's
tools venv when tokenizers is not installed (tools/tools_venv.py).
"""
import argparse
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_venv import ensure  # noqa: E402

ensure("tokenizers", tool="train_tokenizer")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402


class InputError(Exception):
    """A problem with the user's input, reported as one error line."""


def documents(paths, counts):
    for path in paths:
        if path.endswith(".txt"):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            if text:
                counts[0] += 1
                yield text
            continue
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    raise InputError(f"{path}:{n}: not a JSON object: each line of a .jsonl file is one {{\"text\": ...}} document")
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise InputError(f"{path}:{n}: no string \"text\" field: each line of a .jsonl file is one {{\"text\": ...}} document")
                counts[0] += 1
                yield obj["text"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".txt, .jsonl or .jsonl.gz")
    p.add_argument("--out", required=True, help="the tokenizer.json to write")
    p.add_argument("--vocab-size", type=int, default=8192, help="tokens, special ones included (default 8192)")
    p.add_argument("--eos", default="<|endoftext|>", help="the end-of-document token (default <|endoftext|>)")
    p.add_argument("--special", action="append", default=[], help="another special token (repeatable)")
    p.add_argument("--min-frequency", type=int, default=2, help="pairs seen fewer times are not merged (default 2)")
    a = p.parse_args()
    try:
        for path in a.inputs:
            if not (path.endswith(".txt") or path.endswith(".jsonl") or path.endswith(".jsonl.gz")):
                raise InputError(f"input file {path}: unknown kind: name it .txt (one document), .jsonl or .jsonl.gz")
            if not os.path.isfile(path):
                raise InputError(f"input file {path} does not exist or is not a file: check the path")
        specials = [a.eos] + [s for s in a.special if s != a.eos]
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if a.vocab_size < len(alphabet) + len(specials):
            raise InputError(f"--vocab-size {a.vocab_size} is below the {len(alphabet)} byte symbols + {len(specials)} special "
                             f"token(s): use at least {len(alphabet) + len(specials)}")
        out_dir = os.path.dirname(os.path.abspath(a.out))
        if not os.path.isdir(out_dir):
            raise InputError(f"--out {a.out}: the directory {out_dir} does not exist")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=a.vocab_size, min_frequency=a.min_frequency, special_tokens=specials,
                                      initial_alphabet=alphabet, show_progress=sys.stderr.isatty())
        counts = [0]
        tok.train_from_iterator(documents(a.inputs, counts), trainer=trainer)
        if counts[0] == 0:
            raise InputError("the inputs hold no documents: nothing to train on")
        tmp = a.out + ".tmp"
        tok.save(tmp)
        os.replace(tmp, a.out)  # a complete tokenizer.json or none
    except (InputError, OSError, UnicodeError, EOFError, gzip.BadGzipFile) as e:
        sys.exit("train_tokenizer: error: " + " ".join(str(e).split()))
    print(f"train_tokenizer: {counts[0]} documents -> {a.out}: {tok.get_vocab_size()} tokens, EOS {a.eos} = id {tok.token_to_id(a.eos)}")


if __name__ == "__main__":
    main()
