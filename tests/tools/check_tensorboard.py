"""Reads a logging.tensorboard_dir with the real `tensorboard` package's EventAccumulator and checks
that it holds exactly the scalars of the metrics JSONL: the same (tag, step) pairs, tag = JSONL key
(all but "step"), each value the JSONL's rounded to float32 (TensorBoard's simple_value), NaN where
the JSONL has null, 1/0 for true/false; and that the tags the issue names are there.

usage: check_tensorboard.py TENSORBOARD_DIR METRICS.jsonl TAG...     (tests/e2e/tensorboard.sh)
"""
import json
import math
import struct
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main():
    tb_dir, jsonl, required = sys.argv[1], sys.argv[2], sys.argv[3:]
    want = {}
    steps = set()
    for line in open(jsonl, encoding="utf-8"):
        record = json.loads(line)
        steps.add(record["step"])
        for key, v in record.items():
            if key != "step":
                want[(key, record["step"])] = math.nan if v is None else float(v)
    acc = EventAccumulator(tb_dir, size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    got = {}
    for tag in acc.Tags()["scalars"]:
        for e in acc.Scalars(tag):
            if (tag, e.step) in got:
                sys.exit(f"check_tensorboard: {tag} at step {e.step} twice")
            got[(tag, e.step)] = e.value
    problems = [f"missing {k}" for k in sorted(want.keys() - got.keys())]
    problems += [f"not in the JSONL: {k}" for k in sorted(got.keys() - want.keys())]
    for k in sorted(want.keys() & got.keys()):
        w, g = f32(want[k]), got[k]
        if not (w == g or (math.isnan(w) and math.isnan(g))):
            problems.append(f"{k}: TensorBoard {g!r}, JSONL {want[k]!r} (float32 {w!r})")
    tags = {t for t, _ in got}
    problems += [f"no tag {t}" for t in required if t not in tags]
    if problems:
        print("\n".join(problems[:20]))
        sys.exit(f"check_tensorboard: {len(problems)} problem(s)")
    print(f"{len(got)} scalars, {len(tags)} tags over {len(steps)} steps: equal to the JSONL's")


if __name__ == "__main__":
    main()
