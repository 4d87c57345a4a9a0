#!/usr/bin/env python3
"""Generate text from a llamatron checkpoint with a Hugging Face tokenizer.json.

Encodes --prompt (no special tokens added), runs `llamatron generate CKPT --tokens ... --eos ID`
(which keeps a KV cache and stops at the tokenizer's EOS, if it has one), and prints the decoded
prompt + continuation.
"""
import argparse
import os
import re
import subprocess
import sys

try:
    from tokenizers import Tokenizer
except ImportError:
    sys.exit("generate_hf: error: the tokenizers package is missing: pip install tokenizers "
             "(or make the venv like tests/e2e/data_pipeline.sh does)")

EOS_CANDIDATES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>")
DEFAULT_BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "llamatron")


class InputError(Exception):
    """A problem with the user's input, reported as one error line."""


def one_line(text):
    return " ".join(str(text).split())


def load_tokenizer(path):
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such tokenizer file")
    try:
        return Tokenizer.from_file(path)
    except Exception as e:  # the tokenizers package raises plain Exception
        raise InputError(f"{path}: cannot load tokenizer ({one_line(e)})") from None


def find_eos(tokenizer):
    return next((i for i in map(tokenizer.token_to_id, EOS_CANDIDATES) if i is not None), None)


def model_vocab_size(ckpt):
    """model.vocab_size from the checkpoint's config.yaml (a checkpoint.dir: its `latest`), or None."""
    latest = os.path.join(ckpt, "latest")
    if os.path.isfile(latest):
        with open(latest, encoding="utf-8") as f:
            ckpt = os.path.join(ckpt, f.read().strip())
    try:
        with open(os.path.join(ckpt, "config.yaml"), encoding="utf-8") as f:
            match = re.search(r"^model:\n(?:[ \t].*\n)*?[ \t]+vocab_size:[ \t]*(\d+)", f.read(), re.M)
    except OSError:
        return None  # llamatron reports a missing or broken checkpoint
    return int(match.group(1)) if match else None


def run_llamatron(args, ids, eos=None):
    binary = args.bin or os.environ.get("LLAMATRON_BIN") or DEFAULT_BIN
    if not os.access(binary, os.X_OK):
        raise InputError(f"{binary}: no llamatron binary there (give --bin or set LLAMATRON_BIN)")
    cmd = [binary, "generate", args.checkpoint, "--tokens", ",".join(map(str, ids))]
    for flag, value in (("--max-new", args.max_new), ("--temperature", args.temperature),
                        ("--top-k", args.top_k), ("--seed", args.seed), ("--eos", eos)):
        if value is not None:
            cmd += [flag, str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        message = lines[-1] if lines else f"llamatron exited with status {proc.returncode}"
        raise InputError(message.removeprefix("llamatron: error: "))
    return [int(i) for i in proc.stdout.split(",") if i.strip()]


def run(args):
    tokenizer = load_tokenizer(args.tokenizer)
    ids = tokenizer.encode(args.prompt, add_special_tokens=False).ids
    if not ids:
        raise InputError("the prompt encodes to zero tokens")
    vocab = model_vocab_size(args.checkpoint)
    if vocab is not None and max(ids) >= vocab:
        raise InputError(f"the prompt has token id {max(ids)} but the model's vocab_size is {vocab}: "
                         "is this the tokenizer the model was trained with?")
    eos = find_eos(tokenizer)
    if eos is not None and vocab is not None and eos >= vocab:
        eos = None  # a tokenizer's EOS beyond the model's vocabulary can never be generated
    generated = run_llamatron(args, ids, eos)  # with its KV cache; it stops at EOS
    if eos in generated:  # the continuation ends at the tokenizer's EOS
        generated = generated[:generated.index(eos)]
    return tokenizer.decode(ids + generated)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="generate_hf", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint directory, or a checkpoint.dir (its latest)")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json, or a directory holding one")
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new", type=int, help="tokens to generate (llamatron's default: 64)")
    p.add_argument("--temperature", type=float, help="0: greedy (llamatron's default: 0.8)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely (default: all)")
    p.add_argument("--seed", type=int, help="sampling seed")
    p.add_argument("--bin", help="the llamatron binary (default: $LLAMATRON_BIN, else build/llamatron)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        text = run(args)
    except InputError as e:
        print(f"generate_hf: error: {one_line(e)}", file=sys.stderr)
        return 1
    sys.stdout.reconfigure(encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
