#!/usr/bin/python3
"""Plot a llamatron logging.metrics_file (JSONL, one object per optimizer step) to a 2x2 PNG.

usage: plot_metrics.py METRICS.jsonl [--out loss.png] [--title TEXT] [--smooth N]

Panels: loss (with valid_loss points and skipped steps as red x), learning rate, grad norm (and the
gradient noise scale on a second axis when the run logged one, logging.gns), tokens/s.
A file may hold several appended runs (a resumed run re-does steps): for each step the last line wins.
"""
import argparse
import json
import math
import os
import sys
import tempfile

FIGSIZE, DPI = (12, 8), 100  # 1200x800 pixels; tests/tools/test_plot_metrics.py checks this


def fail(msg):
    sys.exit(f"plot_metrics: error: {msg}")  # one stderr line, exit status 1


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints usage too: keep errors to one line
        fail(message)


def num(value):
    # nlohmann::json writes NaN/inf as null; a missing key is treated the same
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {e.strerror if isinstance(e, OSError) else e}")
    by_step = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            fail(f"{path} line {n} is not a JSON object (malformed or truncated): expected llamatron's logging.metrics_file JSONL")
        step = rec.get("step")
        if "loss" not in rec or not isinstance(step, int) or isinstance(step, bool):
            fail(f"{path} line {n} lacks an integer \"step\" or a \"loss\": expected llamatron's logging.metrics_file JSONL")
        by_step[step] = rec  # later lines (a resumed run) replace earlier ones for the same step
    if not by_step:
        fail(f"{path} holds no metrics: is logging.metrics_file set and has training run a step?")
    return [by_step[s] for s in sorted(by_step)]


def main():
    ap = Parser(description="Plot a llamatron metrics JSONL file to a PNG.")
    ap.add_argument("metrics")
    ap.add_argument("--out", default="loss.png")
    ap.add_argument("--title")
    ap.add_argument("--smooth", type=int, default=0, metavar="N", help="moving average of N steps on the loss")
    args = ap.parse_args()
    if args.smooth < 0:
        fail("--smooth must be >= 0")
    recs = load(args.metrics)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        fail(f"output directory {out_dir} does not exist")
    if os.path.exists(args.out) and os.path.samefile(args.out, args.metrics):
        fail("--out names the metrics file itself: choose another path")
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        fail("matplotlib is missing: apt-get install python3-matplotlib")

    steps = np.array([r["step"] for r in recs])
    col = lambda key: np.array([num(r.get(key)) for r in recs])
    loss = col("loss")
    fig, ax = plt.subplots(2, 2, figsize=FIGSIZE, dpi=DPI)
    fig.suptitle(args.title or os.path.basename(args.metrics))

    a = ax[0, 0]
    a.plot(steps, loss, lw=1, alpha=0.5 if args.smooth > 1 else 1, label="train loss")
    ok = np.isfinite(loss)
    skipped = np.array([r.get("skipped") is True for r in recs])
    kept = ok & ~skipped  # a skipped step's loss (a spike) did not train the model: leave it out of the mean
    if args.smooth > 1 and kept.sum() >= args.smooth:
        ma = np.convolve(loss[kept], np.ones(args.smooth) / args.smooth, mode="valid")
        a.plot(steps[kept][args.smooth - 1:], ma, lw=2, label=f"mean of {args.smooth}")
    valid = col("valid_loss")
    if np.isfinite(valid).any():
        a.plot(steps, valid, "o", ms=5, label="valid loss")
    if skipped.any():
        # a skipped step's loss may be non-finite (null): mark those along the bottom edge instead
        fin, bad = skipped & ok, skipped & ~ok
        a.plot(steps[fin], loss[fin], "rx", ms=8, mew=2, label="skipped step")
        a.plot(steps[bad], np.full(bad.sum(), 0.03), "rx", ms=8, mew=2, transform=a.get_xaxis_transform(),
               label=None if fin.any() else "skipped step")
    a.set(title="loss", xlabel="step")
    a.legend()

    ax[0, 1].plot(steps, col("lr"))
    ax[0, 1].set(title="learning rate", xlabel="step")
    gn = col("grad_norm")
    ax[1, 0].plot(steps, gn)
    pos = gn[np.isfinite(gn) & (gn > 0)]
    if pos.size and pos.max() > 100 * pos.min():  # spikes would flatten everything else on a linear axis
        ax[1, 0].set_yscale("log")
    ax[1, 0].set(title="grad norm", xlabel="step")
    gns = col("gns")
    if np.isfinite(gns).any():  # logging.gns: the noise scale on a second axis of the same panel
        twin = ax[1, 0].twinx()
        twin.plot(steps, gns, color="tab:orange", lw=1)
        twin.set_ylabel("gradient noise scale B_simple (sequences)", color="tab:orange")
        ax[1, 0].set(title="grad norm and gradient noise scale")
    ax[1, 1].plot(steps, col("tokens_per_s"))
    ax[1, 1].set(title="tokens/s", xlabel="step")
    for a in ax.flat:
        a.grid(alpha=0.3)
    fig.tight_layout()

    # write beside the target and rename, so a reader never sees a half-written PNG
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".plot_metrics.", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=DPI)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, args.out)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        fail(f"cannot write {args.out}: {e.strerror}")
    extra = f", gradient noise scale last {gns[np.isfinite(gns)][-1]:.4g}" if np.isfinite(gns).any() else ""
    print(f"plot_metrics: {len(recs)} steps ({steps[0]}..{steps[-1]}) -> {args.out}{extra}")


if __name__ == "__main__":
    main()
