#!/usr/bin/python3
"""Test tools/plot_trace.py and tests/tools/check_trace.py: /usr/bin/python3 tests/tools/test_plot_trace.py

Writes synthetic llamatron step traces (Chrome-trace JSON: two ranks, two steps), runs the plotter as a
subprocess and decodes the PNG it makes (nothing of it is imported); calls check_trace's functions and runs
it as a subprocess for its verdicts.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

try:
    import matplotlib.image as mpimg
except ImportError:
    mpimg = None

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_trace  # noqa: E402

TOOL = os.path.join(HERE, "..", "..", "tools", "plot_trace.py")
CHECK = os.path.join(HERE, "check_trace.py")
WIDTH, HEIGHT = 1600, 900  # the tool's figure: 16x9 inches at 100 dpi
PREFIX = "plot_trace: error:"
COMPUTE, DP, PP = 0, 1, 2  # tids
# the plotter's colours: compute in blues, comm in orange, waits edged in dark red
FORWARD, BACKWARD, COMM, WAIT_EDGE = (0x6b, 0xae, 0xd6), (0x21, 0x66, 0xac), (0xfd, 0x8d, 0x3c), (0xb2, 0x18, 0x2b)


def span(name, cat, ts, dur, pid, tid, **args):
    return {"name": name, "cat": cat, "ph": "X", "ts": ts, "dur": dur, "pid": pid, "tid": tid, "args": args}


def rank_events(pid, overlap, steps=(5, 6)):
    """One rank's events of each step, in us. With overlap the dp reduce-scatter runs under backward L2 and
    L1 (longest overlap 800 us, with L2) and the pp send under L3 (200 us); without, both only touch it."""
    evs = [{"name": "process_name", "ph": "M", "pid": pid, "args": {"name": f"rank {pid}"}}]
    evs += [{"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}
            for tid, name in ((COMPUTE, "compute"), (DP, "comm dp"), (PP, "comm pp"))]
    for step in steps:
        t = 1000 + (step - 5) * 10000 + 40 * pid  # rank 1 runs 40 us behind rank 0
        evs.append(span(f"step {step}", "step", t, 8000, pid, COMPUTE, step=step))
        evs.append(span("data", "data", t, 100, pid, COMPUTE, step=step))
        for layer in range(4):
            evs.append(span(f"forward L{layer}", "forward", t + 100 + 800 * layer, 800, pid, COMPUTE,
                            step=step, micro_batch=0, layer=layer))
        for i, layer in enumerate(reversed(range(4))):
            evs.append(span(f"backward L{layer}", "backward", t + 3300 + 1000 * i, 1000, pid, COMPUTE,
                            step=step, micro_batch=0, layer=layer))
        rs = (t + 4500, 1400) if overlap else (t + 7300, 400)
        evs.append(span("dp.reduce_scatter", "comm", *rs, pid, DP, group="dp", bytes=123456, step=step))
        if pid == 0 or step == 6:  # rank 1's pp row has events in step 6 only
            pp = (t + 3300, 200) if overlap else (t + 3100, 200)
            evs.append(span("pp.send_recv", "comm", *pp, pid, PP, group="pp", bytes=4096, step=step))
        evs.append(span("wait dp.reduce_scatter", "wait", t + 7300, 300, pid, COMPUTE, step=step))
        evs.append(span("optimizer", "optimizer", t + 7600, 300, pid, COMPUTE, step=step))
    return evs


N_EVENTS, N_EVENTS_STEP5 = 55, 27  # 13 per rank and step, + 3 pp sends; step 5: 26 + 1
SPAN_MS, SPAN_MS_STEP5 = "18.040", "8.040"  # rank 0's step 5 starts at 1000 us, rank 1's step 6 ends at 19040


def trace(ranks=(0, 1), overlap=True):
    return {"traceEvents": [e for pid in ranks for e in rank_events(pid, overlap)], "displayTimeUnit": "ms"}


def run(tool, *args, env=None):
    return subprocess.run([sys.executable, tool, *args], capture_output=True, text=True, env=env)


def color_pixels(rgb, color, tol=0.04):
    c = [v / 255 for v in color]
    return ((abs(rgb[..., 0] - c[0]) < tol) & (abs(rgb[..., 1] - c[1]) < tol) & (abs(rgb[..., 2] - c[2]) < tol)).sum()


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, doc):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return path

    def assert_error(self, r, *needles):
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith(PREFIX), lines[0])
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertEqual(r.stdout, "")
        self.assertEqual([f for f in os.listdir(self.dir) if f.endswith(".png")], [])  # no PNG, no temp file


class Plot(Base):
    def setUp(self):
        if mpimg is None:
            raise AssertionError("matplotlib is missing: apt-get install python3-matplotlib")
        super().setUp()

    def plot(self, *args, summary):
        out = os.path.join(self.dir, "step.png")
        r = run(TOOL, *args, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertRegex(r.stdout, "^" + re.escape(f"plot_trace: {summary} -> {out}") + "\n$")
        with open(out, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        img = mpimg.imread(out)
        self.assertEqual(img.shape[:2], (HEIGHT, WIDTH))
        return img[..., :3]

    def assert_drawn(self, rgb):
        for name, color in {"forward": FORWARD, "backward": BACKWARD, "comm": COMM, "wait": WAIT_EDGE}.items():
            self.assertGreater(color_pixels(rgb, color), 100, f"no {name} bars")

    def test_all_ranks_file(self):
        doc = trace()
        src = self.write("trace.json", doc)
        rgb = self.plot(src, "--title", "synthetic step", summary=f"{N_EVENTS} events on 6 rows (2 ranks), {SPAN_MS} ms")
        self.assert_drawn(rgb)
        with open(src) as f:
            self.assertEqual(json.load(f), doc)
        self.assertEqual(sorted(os.listdir(self.dir)), ["step.png", "trace.json"])  # no temp file left

    def test_per_rank_files(self):
        srcs = [self.write(f"trace_rank{r}.json", trace(ranks=(r,))) for r in (0, 1)]
        self.assert_drawn(self.plot(*srcs, summary=f"{N_EVENTS} events on 6 rows (2 ranks), {SPAN_MS} ms"))

    def test_step_keeps_its_events_and_rows(self):
        # step 5 has no event on rank 1's pp row: that row goes, and time starts at step 5's first event
        src = self.write("trace.json", trace())
        rgb = self.plot(src, "--step", "5", summary=f"step 5: {N_EVENTS_STEP5} events on 5 rows (2 ranks), {SPAN_MS_STEP5} ms")
        self.assert_drawn(rgb)
        src6 = self.write("trace6.json", trace())
        self.plot(src6, "--step", "6", summary=f"step 6: {N_EVENTS - N_EVENTS_STEP5} events on 6 rows (2 ranks), 8.040 ms")

    def test_gpu_stream_rows_and_unknown_category(self):
        doc = trace(ranks=(0,))
        for ev in doc["traceEvents"]:
            if ev.get("name") == "thread_name":
                ev["args"]["name"] = "stream " + ev["args"]["name"]
            if ev.get("cat") == "optimizer":
                ev["cat"] = "checkpoint"
        src = self.write("trace_rank0.json", doc)
        self.assert_drawn(self.plot(src, summary="28 events on 3 rows (1 ranks), 18.000 ms"))

    def test_negative_ts(self):
        # events from before the rank's time origin: the axis still starts at the earliest one
        doc = trace(ranks=(0,))
        for ev in doc["traceEvents"]:
            if ev["ph"] == "X":
                ev["ts"] -= 2000
        self.assert_drawn(self.plot(self.write("trace.json", doc), summary="28 events on 3 rows (1 ranks), 18.000 ms"))

    def test_overwrite_existing_png(self):
        src = self.write("trace.json", trace())
        out = self.write("old.png", "not a png")
        r = run(TOOL, src, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


class Errors(Base):
    def check(self, doc, *needles, args=()):
        src = self.write("trace.json", doc)
        self.assert_error(run(TOOL, src, "--out", os.path.join(self.dir, "step.png"), *args), *needles)

    def test_missing_file(self):
        self.assert_error(run(TOOL, os.path.join(self.dir, "nope.json"), "--out", os.path.join(self.dir, "x.png")),
                          "cannot read", "nope.json")

    def test_not_json(self):
        self.check("rank 0 forward 12 ms\n", "not JSON")

    def test_truncated(self):
        self.check(json.dumps(trace())[:-200], "not JSON", "truncated")

    def test_no_trace_events(self):
        self.check({"events": []}, '"traceEvents"')

    def test_bare_array(self):
        self.check([], '"traceEvents"')

    def test_trace_events_not_a_list(self):
        self.check({"traceEvents": {"name": "step 5"}}, '"traceEvents"')

    def test_no_complete_events(self):
        doc = trace()
        doc["traceEvents"] = [e for e in doc["traceEvents"] if e["ph"] == "M"]
        self.check(doc, "no complete", '"X"')

    def test_event_without_ts(self):
        doc = trace()
        del doc["traceEvents"][6]["ts"]
        self.check(doc, "traceEvents[6]", '"ts"')

    def test_ts_not_a_number(self):
        doc = trace()
        doc["traceEvents"][6]["ts"] = "1234.5"
        self.check(doc, "traceEvents[6] ('forward L0')", '"ts"')

    def test_negative_dur(self):
        doc = trace()
        doc["traceEvents"][7]["dur"] = -1.0
        self.check(doc, "traceEvents[7]", '"dur"')

    def test_step_not_present(self):
        self.check(trace(), "args.step == 9", "5..6", args=("--step", "9"))

    def test_step_without_steps(self):
        doc = trace()
        for ev in doc["traceEvents"]:
            ev.get("args", {}).pop("step", None)
        self.check(doc, "no event carries args.step", args=("--step", "5"))

    def test_negative_step(self):
        self.check(trace(), "--step", ">= 0", args=("--step", "-1"))

    def test_step_not_an_integer(self):
        self.check(trace(), "--step", args=("--step", "five"))

    def test_no_out(self):
        self.assert_error(run(TOOL, self.write("trace.json", trace())), "--out")

    def test_rank_in_two_files(self):
        a, b = self.write("all.json", trace()), self.write("trace_rank1.json", trace(ranks=(1,)))
        self.assert_error(run(TOOL, a, b, "--out", os.path.join(self.dir, "x.png")), "rank 1", "all.json", "trace_rank1.json")

    def test_out_dir_missing(self):
        missing = os.path.join(self.dir, "no", "such")
        self.assert_error(run(TOOL, self.write("trace.json", trace()), "--out", os.path.join(missing, "x.png")),
                          "output directory", missing)

    def test_out_is_input(self):
        doc = trace()
        src = self.write("trace.json", doc)
        self.assert_error(run(TOOL, src, "--out", src), "trace files")
        with open(src) as f:
            self.assertEqual(json.load(f), doc)

    def test_matplotlib_missing(self):
        # a matplotlib package that fails to import, found first on PYTHONPATH
        fake = os.path.join(self.dir, "fake", "matplotlib")
        os.makedirs(fake)
        self.write(os.path.join("fake", "matplotlib", "__init__.py"), "raise ImportError('no matplotlib here')\n")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(fake))
        self.assert_error(run(TOOL, self.write("trace.json", trace()), "--out", os.path.join(self.dir, "x.png"), env=env),
                          "apt-get install python3-matplotlib")


class CheckTrace(Base):
    def check(self, doc, name="trace.json", **kw):
        return check_trace.check([self.write(name, doc)], **kw)

    def test_overlap_found(self):
        problems, summary = self.check(trace(), ranks=2, expect_overlap=True)
        self.assertEqual(problems, [])
        self.assertEqual(summary, f"check_trace: {N_EVENTS} events, 2 ranks, overlap found: rank 0 0.800 ms, rank 1 0.800 ms")

    def test_touching_is_no_overlap(self):
        # the comm events start or end exactly where a backward event does: zero-length intersections
        problems, summary = self.check(trace(overlap=False), expect_overlap=True)
        self.assertEqual(problems, ["rank 0: no comm event overlaps a backward event",
                                    "rank 1: no comm event overlaps a backward event"])
        problems, summary = self.check(trace(overlap=False), ranks=2)
        self.assertEqual(problems, [])
        self.assertEqual(summary, f"check_trace: {N_EVENTS} events, 2 ranks, overlap found: none")

    def test_overlap_on_one_rank_only(self):
        doc = {"traceEvents": rank_events(0, True) + rank_events(1, False)}
        problems, summary = self.check(doc, expect_overlap=True)
        self.assertEqual(problems, ["rank 1: no comm event overlaps a backward event"])
        self.assertTrue(summary.endswith("overlap found: rank 0 0.800 ms"), summary)

    def test_longest_overlap(self):
        bwd = lambda ts, dur: span("backward", "backward", ts, dur, 0, 0)
        comm = lambda ts, dur, pid=0: span("dp.reduce_scatter", "comm", ts, dur, pid, 1)
        # a comm inside a long backward, one straddling two, one of another rank
        spans = [bwd(0, 100), bwd(100, 50), bwd(10, 5), comm(20, 10), comm(90, 40), comm(0, 1000, pid=1),
                 span("b", "backward", 500, 10, 1, 0)]
        self.assertEqual(check_trace.longest_overlap_us(spans), {0: 30, 1: 10})
        self.assertEqual(check_trace.longest_overlap_us([bwd(0, 10), comm(10, 5), comm(0, 0)]), {})

    def test_missing_field(self):
        for key in ("name", "cat", "ts", "dur", "pid", "tid"):
            doc = trace()
            del doc["traceEvents"][8][key]
            problems, _ = self.check(doc)
            self.assertEqual(len(problems), 1, problems)
            self.assertRegex(problems[0], r"^.*trace\.json: traceEvents\[8\].* lacks .*\"" + key + '"')

    def test_missing_ph(self):
        doc = trace()
        del doc["traceEvents"][8]["ph"]
        problems, _ = self.check(doc)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn('traceEvents[8] lacks "ph"', problems[0])

    def test_bad_numbers(self):
        for key, value in (("ts", -0.5), ("dur", "10"), ("dur", True), ("ts", float("nan"))):
            doc = trace()
            doc["traceEvents"][9][key] = value
            problems, _ = self.check(doc)
            self.assertEqual(len(problems), 1, (key, value, problems))
            self.assertIn(f'"{key}" >= 0', problems[0])

    def test_missing_thread_name(self):
        doc = trace()
        doc["traceEvents"] = [e for e in doc["traceEvents"]
                              if not (e["name"] == "thread_name" and e["pid"] == 1 and e["tid"] == PP)]
        problems, _ = self.check(doc)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("pid 1 tid 2 has events but no thread_name", problems[0])

    def test_ranks(self):
        self.assertEqual(self.check(trace(), ranks=3)[0], ["--ranks 3: no events of rank(s) [2]"])
        self.assertEqual(self.check(trace(), ranks=1)[0], ["--ranks 1: events of pid(s) [1] outside 0..0"])
        self.assertEqual(self.check(trace(ranks=(1,)), ranks=1)[0],
                         ["--ranks 1: no events of rank(s) [0]", "--ranks 1: events of pid(s) [1] outside 0..0"])

    def test_per_rank_files(self):
        paths = [self.write(f"trace_rank{r}.json", trace(ranks=(r,))) for r in (0, 1)]
        problems, summary = check_trace.check(paths, ranks=2, expect_overlap=True)
        self.assertEqual(problems, [])
        self.assertIn("2 ranks", summary)
        wrong = self.write("trace_rank3.json", trace(ranks=(1,)))
        problems, _ = check_trace.check([paths[0], wrong])
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("named for rank 3 but holds pids [1]", problems[0])
        problems, _ = check_trace.check(paths + [self.write("all.json", trace())])
        self.assertEqual([p for p in problems if "in both" in p], [f"rank 0 is in both {paths[0]} and {self.dir}/all.json",
                                                                     f"rank 1 is in both {paths[1]} and {self.dir}/all.json"])

    def test_unreadable(self):
        for doc, needle in (("{\"traceEvents\": [", "not JSON"), ({"events": []}, 'no "traceEvents" list'),
                            ({"traceEvents": [e for e in trace()["traceEvents"] if e["ph"] == "M"]}, "no complete")):
            problems, _ = self.check(doc)
            self.assertEqual(len(problems), 1, problems)
            self.assertIn(needle, problems[0])
        problems, _ = check_trace.check([os.path.join(self.dir, "nope.json")])
        self.assertIn("nope.json: cannot read it", problems[0])

    def test_command_line(self):
        src = self.write("trace.json", trace())
        r = run(CHECK, src, "--ranks", "2", "--expect-overlap")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout, f"check_trace: {N_EVENTS} events, 2 ranks, overlap found: rank 0 0.800 ms, rank 1 0.800 ms\n")
        r = run(CHECK, self.write("flat.json", trace(overlap=False)), "--ranks", "2", "--expect-overlap")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertIn("FAILED, 2 problem(s)", r.stderr)
        self.assertIn("rank 1: no comm event overlaps a backward event", r.stderr)
        r = run(CHECK, src, "--ranks", "0")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "check_trace: error: --ranks must be >= 1\n")
        r = run(CHECK)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)

    def test_many_problems_are_capped(self):
        doc = trace()
        for ev in doc["traceEvents"]:
            if ev["ph"] == "X":
                del ev["dur"]
        r = run(CHECK, self.write("trace.json", doc))
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"FAILED, {N_EVENTS} problem(s)", r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1 + check_trace.MAX_REPORTED + 1, r.stderr)
        self.assertIn(f"... and {N_EVENTS - check_trace.MAX_REPORTED} more", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
