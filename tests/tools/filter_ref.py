#!/usr/bin/env python3
"""`llamatron data filter` against an independent implementation of the same rules (docs/data.md).

Usage: filter_ref.py LLAMATRON WORKDIR

Builds a corpus that trips every rule (and sits on each threshold), adds real text from
/usr/share/doc, runs the filter with --write-dropped, and checks every document's verdict (the first
failing rule, its value) and the report's counts and bytes against what this file computes with
Python's own Unicode tables (str.isalpha) and UTF-8 decoder (errors="replace").
"""
import json
import os
import random
import subprocess
import sys

# Unicode White_Space (PropList.txt)
WHITE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
RULES = ["kept", "invalid_utf8", "too_few_words", "too_many_words", "short_words", "long_words", "few_letters", "symbols",
         "ellipsis_lines", "duplicate_lines", "one_character"]
DEFAULTS = dict(min_words=50, max_words=100000, min_mean=3, max_mean=10, min_alpha=0.5, max_symbol=0.1, max_ellipsis=0.3,
                max_dup=0.3, max_top=0.0, repair=False)


def is_space(ch):
    return ord(ch) in WHITE


def strip(line):
    b, e = 0, len(line)
    while b < e and is_space(line[b]):
        b += 1
    while e > b and is_space(line[e - 1]):
        e -= 1
    return line[b:e]


def verdict(text, invalid, o):
    if invalid and not o["repair"]:
        return "invalid_utf8", 0.0
    words, cur = [], []
    for ch in text:
        if is_space(ch):
            if cur:
                words.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        words.append("".join(cur))
    nw = len(words)
    nonspace = sum(len(w) for w in words)
    letters = sum(ch.isalpha() for w in words for ch in w)
    symbols = text.count("#") + text.count("...") + text.count("\u2026")
    lines = [s for s in (strip(l) for l in text.split("\n")) if s]
    ellipsis = sum(l.endswith("...") or l.endswith("\u2026") for l in lines)
    dup = len(lines) - len(set(lines))
    counts = {}
    for w in words:
        for ch in w:
            counts[ch] = counts.get(ch, 0) + 1
    top = max(counts.values()) if counts else 0
    if nw < o["min_words"]:
        return "too_few_words", float(nw)
    if nw > o["max_words"]:
        return "too_many_words", float(nw)
    if nw and nonspace / nw < o["min_mean"]:
        return "short_words", nonspace / nw
    if nw and nonspace / nw > o["max_mean"]:
        return "long_words", nonspace / nw
    if nonspace and letters / nonspace < o["min_alpha"]:
        return "few_letters", letters / nonspace
    if nw and symbols / nw > o["max_symbol"]:
        return "symbols", symbols / nw
    if lines and ellipsis / len(lines) > o["max_ellipsis"]:
        return "ellipsis_lines", ellipsis / len(lines)
    if lines and dup / len(lines) > o["max_dup"]:
        return "duplicate_lines", dup / len(lines)
    if o["max_top"] > 0 and nonspace and top / nonspace > o["max_top"]:
        return "one_character", top / nonspace
    return "kept", 0.0


def prose(rng, n, vocab):
    return " ".join(rng.choice(vocab) for _ in range(n))


def corpus(rng):
    """(raw bytes of the document, as a .txt file or as a JSON line) for every case."""
    vocab = ("model data training token layer weight gradient loss batch sequence attention value "
             "über naïve café 東京 größe παράδειγμα пример").split()
    docs = []
    line = lambda n: prose(rng, n, vocab)
    docs.append(line(49))                                 # one word short
    docs.append(line(50))                                 # just enough
    docs.append(line(120001 // 12))                       # fine
    docs.append(" ".join(["ab"] * 60))                    # mean length 2
    docs.append(" ".join(["abc"] * 60))                   # mean length 3: kept
    docs.append(" ".join(["a" * 11] * 60))                # mean 11
    docs.append(" ".join(["1234", "word"] * 40))          # half digits: alpha 0.5, kept
    docs.append(" ".join(["12345", "word"] * 40))         # alpha < 0.5
    docs.append(line(60) + " #" * 6)                      # 6 symbols / 66 words
    docs.append(line(60) + " #" * 7)                      # 7 / 67 > 0.1
    docs.append(line(70) + " ...... \u2026")              # "......" counts twice, '…' once
    docs.append("\n".join(line(10) + ("..." if i < 3 else "") for i in range(10)))   # 3/10 ellipsis lines: kept
    docs.append("\n".join(line(10) + ("\u2026" if i < 4 else "") for i in range(10)))  # 4/10
    rep = line(10)
    docs.append("\n".join([rep] * 4 + [line(10) for _ in range(6)]))   # 3 of 10 repeat: kept
    docs.append("\n".join([rep] * 5 + [line(10) for _ in range(5)]))   # 4 of 10
    docs.append("  \t\n\n" + "\n".join("  " + line(8) + " \u3000" for _ in range(8)) + "\n\n")  # white space at the ends
    docs.append("zzzz " * 60)                                          # one character (only with the option)
    docs.append(line(30) + "\u2003" + line(30))                        # an em space separates words
    docs.append(line(25) + "\u200b" + line(25))                        # a zero-width space does not
    for sep in sorted(WHITE):                                          # exactly 50 words, split by each white space
        docs.append(chr(sep).join(rng.choice(vocab) for _ in range(50)))
    docs.append("")                                                    # empty
    docs.append("\u00a0 \u2028")                                       # only white space
    raw = [d.encode() for d in docs]
    bad = line(60).encode()
    raw.append(bad[:20] + b"\xff\xfe" + bad[20:])                        # invalid bytes
    raw.append(bad[:30] + b"\xe2\x82" + bad[30:])                        # a truncated sequence
    raw.append(bad[:40] + b"\xed\xa0\x80" + bad[40:])                    # an encoded surrogate
    raw.append(bad[:40] + b"\xc0\xaf" + bad[40:])                        # an overlong '/'
    raw.append(bad + b"\xf0\x9f\x98")                                    # cut at the end
    for _ in range(60):                                                  # random ones near the thresholds
        n = rng.randint(40, 90)
        text = "\n".join(line(rng.randint(1, 12)) + rng.choice(["", "", "...", " #", "\u2026"]) for _ in range(n // 6 + 1))
        if rng.random() < 0.3:
            text += "\n" + "\n".join([text.split("\n")[0]] * rng.randint(1, 4))
        raw.append(text.encode())
    return raw


def debian_docs(limit):
    out = []
    for root, _, files in os.walk("/usr/share/doc"):
        for f in sorted(files):
            p = os.path.join(root, f)
            if f.endswith(".gz") or os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as fh:
                out.append(fh.read(200000))
            if len(out) >= limit:
                return out
    return out


def run_filter(bin_, inputs, out, extra):
    r = subprocess.run([bin_, "data", "filter", *inputs, "--out", out, "--write-dropped", *extra], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: llamatron data filter exited {r.returncode}: {r.stderr.strip()}")
    return json.load(open(os.path.join(out, "report.json"))), [json.loads(l) for l in open(os.path.join(out, "dropped.jsonl"))], \
        [json.loads(l) for f in sorted(os.listdir(out)) if f.startswith("data_") for l in open(os.path.join(out, f))]


def check(bin_, work, raw, options, extra, label):
    """Half the documents as .txt files, half as lines of a .jsonl file."""
    d = os.path.join(work, label)
    os.makedirs(os.path.join(d, "in"))
    inputs, expect = [], {}
    jl = os.path.join(d, "in", "docs.jsonl")
    with open(jl, "wb") as f:
        line = 0
        for i, b in enumerate(raw):
            text = b.decode("utf-8", "replace")
            invalid = text.encode() != b
            if i % 2 == 0:
                if not b:
                    continue  # an empty .txt file is no document
                p = os.path.join(d, "in", f"doc{i:04d}.txt")
                open(p, "wb").write(b)
                inputs.append(p)
                expect[p + ":1"] = (verdict(text, invalid, options), len(text.encode()), text)
            else:
                line += 1
                # Invalid bytes go into the JSON line raw, as a crawler's broken output would have them:
                # surrogateescape keeps them as they are through json.dumps.
                obj = {"id": i, "text": b.decode("utf-8", "surrogateescape"), "lang": "xx"}
                f.write(json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogateescape") + b"\n")
                expect[f"{jl}:{line}"] = (verdict(text, invalid, options), len(text.encode()), text)
    inputs.append(jl)
    report, dropped, kept = run_filter(bin_, inputs, os.path.join(d, "out"), extra)
    failures = []
    got = {x["source"]: (x["rule"], x["value"]) for x in dropped}
    kept_texts = sorted(x["text"] for x in kept)
    for src, ((rule, value), _, _) in expect.items():
        g = got.get(src, ("kept", 0.0))
        if g[0] != rule or abs(g[1] - value) > 1e-9 * max(1, abs(value)):
            failures.append(f"{src}: llamatron says {g}, the reference ({rule}, {value})")
    want_kept = sorted(t for (v, _, t) in expect.values() if v[0] == "kept")
    if kept_texts != want_kept:
        failures.append(f"kept texts differ: {len(kept_texts)} written, {len(want_kept)} expected")
    for r in RULES[1:]:
        n = sum(1 for (v, _, _) in expect.values() if v[0] == r)
        b = sum(nb for (v, nb, _) in expect.values() if v[0] == r)
        if report["dropped"][r] != {"documents": n, "bytes": b}:
            failures.append(f"report {r}: {report['dropped'][r]}, expected {n} documents, {b} bytes")
    if report["documents"] != len(expect):
        failures.append(f"report documents {report['documents']}, expected {len(expect)}")
    counts = {r: sum(1 for (v, _, _) in expect.values() if v[0] == r) for r in RULES}
    print(f"{label}: {len(expect)} documents, verdicts {counts}: {'FAIL' if failures else 'all equal'}")
    return failures


def main():
    bin_, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rng = random.Random(7)
    raw = corpus(rng) + debian_docs(400)
    failures = check(bin_, work, raw, DEFAULTS, [], "defaults")
    strict = dict(DEFAULTS, min_words=20, max_words=5000, min_mean=3.5, max_mean=8, min_alpha=0.7, max_symbol=0.02, max_ellipsis=0.1,
                  max_dup=0.1, max_top=0.2, repair=True)
    failures += check(bin_, work, raw, strict,
                      ["--min-words", "20", "--max-words", "5000", "--min-mean-word-length", "3.5", "--max-mean-word-length", "8",
                       "--min-alpha-fraction", "0.7", "--max-symbol-ratio", "0.02", "--max-ellipsis-lines", "0.1",
                       "--max-duplicate-lines", "0.1", "--max-top-char-fraction", "0.2", "--invalid-utf8", "repair"], "options")
    for f in failures[:20]:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
