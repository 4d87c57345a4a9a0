#!/usr/bin/python3
"""Plot llamatron step-timeline traces (Chrome-trace / Perfetto JSON, one file per rank or one for all) to a PNG.

usage: plot_trace.py TRACE... --out step.png [--title TEXT] [--step N]

One row per (rank, thread or stream), labelled "rank R <thread name>"; time in ms from the earliest event
drawn. Complete ("ph": "X") events are bars: compute (forward, backward, optimizer) in blues and violet,
communication in orange, waits hatched red, steps as a grey frame with a dotted line at each step's start;
other categories (data, checkpoint, ...) in grey. An event inside another on the same row is drawn on top of
it, a little thinner. --step N keeps the events whose args.step is N, and the rows that have them.
The ranks' timestamps are taken as written: the tool does not align their clocks.
"""
import argparse
import json
import math
import os
import sys
import tempfile

FIGSIZE, DPI = (16, 9), 100  # 1600x900 pixels; tests/tools/test_plot_trace.py checks this

# category -> (bar colour, label colour); anything else is drawn as OTHER
STYLE = {
    "forward": ("#6baed6", "black"),
    "backward": ("#2166ac", "white"),
    "optimizer": ("#6a51a3", "white"),
    "comm": ("#fd8d3c", "black"),
    "wait": ("#f4a3a3", "black"),  # hatched with WAIT_HATCH in dark red
    "step": ("#e3e3e3", "black"),
}
OTHER = ("#a0a0a0", "black")
WAIT_HATCH, WAIT_EDGE = "////", "#b2182b"
NESTED_EPS_US = 1e-3  # an event starting within 1 ns of the previous one's end follows it, not nests in it


def fail(msg):
    sys.exit(f"plot_trace: error: {msg}")  # one stderr line, exit status 1


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints usage too: keep errors to one line
        fail(message)


def is_num(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def load(path):
    """Return (complete events, {(pid, tid): thread name}) of one trace file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {e.strerror if isinstance(e, OSError) else e}")
    try:
        doc = json.loads(text)
    except ValueError:
        fail(f"{path} is not JSON (malformed, or truncated by a run that stopped before closing it): "
             "expected llamatron's Chrome-trace JSON")
    events = doc.get("traceEvents") if isinstance(doc, dict) else None
    if not isinstance(events, list):
        fail(f"{path} has no \"traceEvents\" list: expected llamatron's Chrome-trace JSON")
    spans, names = [], {}
    for i, ev in enumerate(events):
        where = f"{path} traceEvents[{i}]"
        if not isinstance(ev, dict):
            fail(f"{where} is not an object")
        if ev.get("ph") == "M" and ev.get("name") == "thread_name":
            args = ev.get("args")
            if is_int(ev.get("pid")) and is_int(ev.get("tid")) and isinstance(args, dict) \
                    and isinstance(args.get("name"), str):
                names[(ev["pid"], ev["tid"])] = args["name"]
            continue
        if ev.get("ph") != "X":
            continue  # metadata, instants, counters: not drawn
        where += f" ({ev['name']!r})" if isinstance(ev.get("name"), str) else ""
        if not is_num(ev.get("ts")):  # a negative ts is drawn all the same: time counts from the earliest event
            fail(f"{where} lacks a number \"ts\"")
        if not is_num(ev.get("dur")) or ev["dur"] < 0:
            fail(f"{where} lacks a number \"dur\" >= 0")
        for key in ("pid", "tid"):
            if not is_int(ev.get(key)):
                fail(f"{where} lacks an integer \"{key}\"")
        spans.append(ev)
    if not spans:
        fail(f"{path} holds no complete (\"ph\": \"X\") events: did the run trace a step?")
    return spans, names


def step_of(ev):
    args = ev.get("args")
    step = args.get("step") if isinstance(args, dict) else None
    return step if is_int(step) else None


def lay_out(evs):
    """Sort one row's events and give each a nesting depth; return [(event, depth, has_children)]."""
    evs = sorted(evs, key=lambda e: (e["ts"], -e["dur"]))
    out, stack = [], []  # stack: indices into out of the events still open
    for ev in evs:
        while stack and out[stack[-1]][0]["ts"] + out[stack[-1]][0]["dur"] <= ev["ts"] + NESTED_EPS_US:
            stack.pop()
        if stack:
            out[stack[-1]][2] = True
        out.append([ev, len(stack), False])
        stack.append(len(out) - 1)
    return out


def main():
    ap = Parser(description="Plot llamatron Chrome-trace JSON files (a step timeline) to a PNG.")
    ap.add_argument("traces", nargs="+", metavar="TRACE")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title")
    ap.add_argument("--step", type=int, metavar="N", help="only the events whose args.step is N")
    args = ap.parse_args()
    if args.step is not None and args.step < 0:
        fail("--step must be >= 0")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        fail(f"output directory {out_dir} does not exist")
    if os.path.exists(args.out) and any(os.path.exists(t) and os.path.samefile(args.out, t) for t in args.traces):
        fail("--out names one of the trace files: choose another path")

    spans, names, rank_file = [], {}, {}
    for path in args.traces:
        evs, nm = load(path)
        for pid in sorted({e["pid"] for e in evs}):
            if pid in rank_file:
                fail(f"rank {pid} is in both {rank_file[pid]} and {path}: pass the all-ranks file or the per-rank files, not both")
            rank_file[pid] = path
        spans += evs
        names.update(nm)
    if args.step is not None:
        steps = sorted({s for s in map(step_of, spans) if s is not None})
        spans = [e for e in spans if step_of(e) == args.step]
        if not spans:
            have = f"steps present: {steps[0]}..{steps[-1]}" if steps else "no event carries args.step"
            fail(f"no event has args.step == {args.step} ({have})")
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        fail("matplotlib is missing: apt-get install python3-matplotlib")

    t0 = min(e["ts"] for e in spans)
    span_ms = max((e["ts"] + e["dur"] - t0) / 1000 for e in spans)
    by_row = {}
    for e in spans:
        by_row.setdefault((e["pid"], e["tid"]), []).append(e)
    rows = sorted(by_row)  # rank 0 first; within a rank by tid (0 is the compute thread)
    ranks = sorted({pid for pid, _ in rows})

    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    title = args.title or ", ".join(os.path.basename(t) for t in args.traces[:3]) + \
        (f" and {len(args.traces) - 3} more" if len(args.traces) > 3 else "")
    if args.step is not None and not args.title:
        title += f": step {args.step}"
    fig.suptitle(title)
    bars, leaves = {}, []  # (category key, depth) -> x ranges; leaves: events that may carry their name
    for y, row in enumerate(rows):
        for ev, depth, has_children in lay_out(by_row[row]):
            cat = ev.get("cat") if ev.get("cat") in STYLE else None
            x = ((ev["ts"] - t0) / 1000, ev["dur"] / 1000)
            bars.setdefault((cat, depth), []).append((y, x))
            if not has_children:
                leaves.append((y, depth, x, ev, cat))
    height = lambda depth: 0.8 * 0.78 ** min(depth, 4)
    for (cat, depth), items in sorted(bars.items(), key=lambda kv: kv[0][1]):
        face = STYLE[cat][0] if cat else OTHER[0]
        wait = cat == "wait"
        # an edge in the bar's own colour keeps sub-pixel events (a short send) visible
        kw = dict(facecolors=face, edgecolors=WAIT_EDGE if wait else face, linewidths=0.5, zorder=2 + depth)
        if wait:
            kw["hatch"] = WAIT_HATCH
        by_y = {}
        for y, x in items:
            by_y.setdefault(y, []).append(x)
        for y, xs in by_y.items():
            h = height(depth)
            ax.broken_barh(xs, (y - h / 2, h), **kw)

    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"rank {pid} {names.get((pid, tid), f'tid {tid}')}" for pid, tid in rows],
                       fontsize=max(5, min(10, 360 / len(rows))))
    ax.set_ylim(len(rows) - 0.5, -0.5)  # rank 0 at the top
    for y in range(1, len(rows)):
        if rows[y][0] != rows[y - 1][0]:
            ax.axhline(y - 0.5, color="0.35", lw=0.8)
    ax.set_xlim(0, span_ms * 1.01 if span_ms > 0 else 1e-3)
    ax.set_xlabel("time (ms) from the earliest event")
    ax.grid(axis="x", alpha=0.3)

    starts = {}  # a step's line sits where its first rank began it
    for e in spans:
        if e.get("cat") == "step" and step_of(e) is not None:
            starts[step_of(e)] = min(starts.get(step_of(e), math.inf), (e["ts"] - t0) / 1000)
    for s, x in sorted(starts.items())[:64]:
        ax.axvline(x, color="0.3", lw=0.8, ls=":", zorder=1)
        if len(starts) <= 24:
            ax.text(x, 1.0, f" step {s}", transform=ax.get_xaxis_transform(), va="bottom", ha="left", fontsize=8)

    cats = {e.get("cat") for e in spans}
    handles = [Patch(facecolor=STYLE[c][0], edgecolor=WAIT_EDGE if c == "wait" else "0.4",
                     hatch=WAIT_HATCH if c == "wait" else None, label=c) for c in STYLE if c in cats]
    others = sorted(str(c) for c in cats if c not in STYLE)
    if others:
        text = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
        handles.append(Patch(facecolor=OTHER[0], edgecolor="0.4", label=f"other ({text})"))
    # below the time axis: above it sit the step labels, and the bars fill the axes
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=len(handles), frameon=False,
              fontsize=9)
    fig.tight_layout()

    # names inside the bars wide enough to hold them; a one-step trace reads without a viewer
    px_per_ms = ax.get_position().width * FIGSIZE[0] * DPI / ax.get_xlim()[1]
    labelled = 0
    for y, depth, (x, w), ev, cat in sorted(leaves, key=lambda l: -l[2][1]):
        name = ev.get("name")
        if labelled >= 400 or not isinstance(name, str) or w * px_per_ms < 6 * len(name) + 8:
            continue
        ax.text(x + w / 2, y, name, ha="center", va="center", fontsize=7, clip_on=True, zorder=20,
                color=STYLE[cat][1] if cat else OTHER[1])
        labelled += 1

    # write beside the target and rename, so a reader never sees a half-written PNG
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".plot_trace.", suffix=".png")
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
    what = f"step {args.step}: " if args.step is not None else ""
    print(f"plot_trace: {what}{len(spans)} events on {len(rows)} rows ({len(ranks)} ranks), {span_ms:.3f} ms -> {args.out}")


if __name__ == "__main__":
    main()
