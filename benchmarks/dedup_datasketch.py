#!/usr/bin/env python3
"""The datasketch side of benchmarks/dedup.sh.

  make DOCS PATH       writes a corpus: families of a base document and copies with words replaced
  run PATH WORKERS     MinHash signatures (WORKERS processes), MinHashLSH insert + query, candidates
                       verified by their estimated Jaccard, union-find; prints the kept count
The normalisation and shingles are llamatron's (lower case, white-space words, 5-grams).
"""
import json
import multiprocessing
import random
import sys

NGRAM, NUM_PERM, THRESHOLD = 5, 128, 0.8


def make(n, path):
    rng = random.Random(3)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(20000)]
    with open(path, "w") as f:
        written = 0
        while written < n:
            base = [rng.choice(vocab) for _ in range(rng.randint(200, 600))]
            for q in [None] + rng.sample([0.0, 0.01, 0.03, 0.1, 0.3], rng.randint(0, 3)):
                w = base if q is None else [rng.choice(vocab) if rng.random() < q else x for x in base]
                f.write(json.dumps({"text": " ".join(w)}) + "\n")
                written += 1
                if written == n:
                    break


def signature(text):
    from datasketch import MinHash
    w = text.lower().split()
    sh = {" ".join(w[i:i + NGRAM]) for i in range(max(1, len(w) - NGRAM + 1))}
    m = MinHash(num_perm=NUM_PERM, seed=1)
    m.update_batch([s.encode() for s in sh])
    return m


def run(path, workers):
    from datasketch import MinHashLSH
    texts = [json.loads(l)["text"] for l in open(path)]
    with multiprocessing.Pool(workers) as pool:
        mh = pool.map(signature, texts, chunksize=64)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    for i, m in enumerate(mh):
        lsh.insert(i, m)
    parent = list(range(len(mh)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for i, m in enumerate(mh):
        for j in lsh.query(m):
            if j != i and m.jaccard(mh[j]) >= THRESHOLD:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    print(sum(find(i) == i for i in range(len(mh))))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(int(sys.argv[2]), sys.argv[3])
    else:
        run(sys.argv[2], int(sys.argv[3]))
