#!/usr/bin/python3
"""Check llamatron step-timeline traces (Chrome-trace / Perfetto JSON) for the end-to-end tests.

usage: check_trace.py TRACE... [--ranks N] [--expect-overlap]

Checks: every file parses and holds a "traceEvents" list; every complete ("ph": "X") event has a string
name and cat, numbers ts and dur >= 0 and integers pid and tid; a file named trace_rank<R>.json holds rank R
only and no rank is in two files; with --ranks N the pids are exactly 0..N-1; every (pid, tid) that has an
event has thread_name metadata; with --expect-overlap, on every rank some "comm" event overlaps (by a
positive length) some "backward" event of the same pid. On success prints one summary line (events, ranks,
the longest comm/backward overlap per rank) and exits 0; otherwise prints what failed and exits 1.
The functions are imported by tests/tools/test_plot_trace.py.
"""
import argparse
import bisect
import json
import math
import os
import re
import sys

MAX_REPORTED = 20  # problems printed before "... and N more"


def fail(msg):
    sys.exit(f"check_trace: error: {msg}")  # one stderr line, exit status 1


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints usage too: keep errors to one line
        fail(message)


class TraceError(Exception):
    """A file that cannot be checked at all: unreadable, not JSON, no traceEvents list."""


def is_num(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def load(path):
    """Return the traceEvents list of one file; raise TraceError when there is none to check."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise TraceError(f"cannot read it: {e.strerror}")
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise TraceError("not JSON (malformed or truncated)")
    events = doc.get("traceEvents") if isinstance(doc, dict) else None
    if not isinstance(events, list):
        raise TraceError("no \"traceEvents\" list")
    return events


def check_events(events):
    """Field checks of one file's events; return (problems, complete events, {(pid, tid) with thread_name})."""
    problems, spans, named = [], [], set()
    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            problems.append(f"traceEvents[{i}] is not an object")
            continue
        ph = ev.get("ph")
        if ph == "M":
            args = ev.get("args")
            if ev.get("name") == "thread_name":
                if not (is_int(ev.get("pid")) and is_int(ev.get("tid")) and isinstance(args, dict)
                        and isinstance(args.get("name"), str)):
                    problems.append(f"traceEvents[{i}] thread_name lacks an integer pid/tid or a string args.name")
                else:
                    named.add((ev["pid"], ev["tid"]))
            continue
        if ph is None:
            problems.append(f"traceEvents[{i}] lacks \"ph\"")
            continue
        if ph != "X":
            continue
        what = f"traceEvents[{i}] ({ev['name']!r})" if isinstance(ev.get("name"), str) else f"traceEvents[{i}]"
        bad = [f"a string \"{k}\"" for k in ("name", "cat") if not isinstance(ev.get(k), str)]
        bad += [f"a number \"{k}\" >= 0" for k in ("ts", "dur") if not (is_num(ev.get(k)) and ev[k] >= 0)]
        bad += [f"an integer \"{k}\"" for k in ("pid", "tid") if not is_int(ev.get(k))]
        if bad:
            problems.append(f"{what} lacks " + ", ".join(bad))
        else:
            spans.append(ev)
    return problems, spans, named


def longest_overlap_us(spans):
    """{pid: longest positive intersection of a "comm" event with a "backward" event of that pid, in us}."""
    out = {}
    for pid in sorted({e["pid"] for e in spans}):
        bwd = sorted((e["ts"], e["ts"] + e["dur"]) for e in spans if e["pid"] == pid and e["cat"] == "backward")
        comm = [(e["ts"], e["ts"] + e["dur"]) for e in spans if e["pid"] == pid and e["cat"] == "comm"]
        if not bwd or not comm:
            continue
        starts = [s for s, _ in bwd]
        end_max = []  # end_max[j]: the latest end among bwd[0..j]
        for _, e in bwd:
            end_max.append(max(e, end_max[-1]) if end_max else e)
        best = 0.0
        for a, b in comm:
            j = bisect.bisect_right(starts, a)  # bwd[:j] start at or before the comm event
            if j:
                best = max(best, min(b, end_max[j - 1]) - a)
            k = bisect.bisect_left(starts, b)  # bwd[j:k] start inside it
            for s, e in bwd[j:k]:
                best = max(best, min(b, e) - s)
        if best > 0:
            out[pid] = best
    return out


def check(paths, ranks=None, expect_overlap=False):
    """Check trace files together; return (problems, summary line). No problems means the traces pass."""
    problems, spans, named, rank_file = [], [], set(), {}
    for path in paths:
        try:
            events = load(path)
        except TraceError as e:
            problems.append(f"{path}: {e}")
            continue
        probs, sp, nm = check_events(events)
        problems += [f"{path}: {p}" for p in probs]
        if not sp and not probs:
            problems.append(f"{path}: no complete (\"ph\": \"X\") events")
        pids = sorted({e["pid"] for e in sp})
        m = re.fullmatch(r"trace_rank(\d+)\.json", os.path.basename(path))
        if m and pids and pids != [int(m.group(1))]:
            problems.append(f"{path}: named for rank {int(m.group(1))} but holds pids {pids}")
        for pid in pids:
            if pid in rank_file:
                problems.append(f"rank {pid} is in both {rank_file[pid]} and {path}")
            else:
                rank_file[pid] = path
        spans += sp
        named |= nm
    pids = sorted({e["pid"] for e in spans})
    if ranks is not None:
        missing = sorted(set(range(ranks)) - set(pids))
        extra = [p for p in pids if not 0 <= p < ranks]
        if missing:
            problems.append(f"--ranks {ranks}: no events of rank(s) {missing}")
        if extra:
            problems.append(f"--ranks {ranks}: events of pid(s) {extra} outside 0..{ranks - 1}")
    unnamed = sorted({(e["pid"], e["tid"]) for e in spans} - named)
    for pid, tid in unnamed:
        problems.append(f"pid {pid} tid {tid} has events but no thread_name metadata")
    overlap = longest_overlap_us(spans)
    if expect_overlap:
        for pid in pids:
            if pid not in overlap:
                problems.append(f"rank {pid}: no comm event overlaps a backward event")
    found = ", ".join(f"rank {p} {overlap[p] / 1000:.3f} ms" for p in pids if p in overlap) or "none"
    summary = f"check_trace: {len(spans)} events, {len(pids)} ranks, overlap found: {found}"
    return problems, summary


def main(argv=None):
    ap = Parser(description="Check llamatron Chrome-trace JSON files.")
    ap.add_argument("traces", nargs="+", metavar="TRACE")
    ap.add_argument("--ranks", type=int, metavar="N", help="the pids must be exactly 0..N-1")
    ap.add_argument("--expect-overlap", action="store_true", help="on every rank a comm event overlaps a backward one")
    args = ap.parse_args(argv)
    if args.ranks is not None and args.ranks < 1:
        fail("--ranks must be >= 1")
    problems, summary = check(args.traces, args.ranks, args.expect_overlap)
    if not problems:
        print(summary)
        return 0
    print(f"check_trace: FAILED, {len(problems)} problem(s):", file=sys.stderr)
    for p in problems[:MAX_REPORTED]:
        print(f"  {p}", file=sys.stderr)
    if len(problems) > MAX_REPORTED:
        print(f"  ... and {len(problems) - MAX_REPORTED} more", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
