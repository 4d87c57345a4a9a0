#!/usr/bin/python3
"""Test tools/plot_metrics.py end to end: /usr/bin/python3 tests/tools/test_plot_metrics.py

Writes synthetic llamatron metrics JSONL, runs the tool as a subprocess and decodes the PNG it makes;
nothing of the tool is imported.
"""
import json
import math
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

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "plot_metrics.py")
WIDTH, HEIGHT = 1200, 800  # the tool's figure: 12x8 inches at 100 dpi
PREFIX = "plot_metrics: error:"


def line(step, loss, **extra):
    rec = {"step": step, "tokens": step * 4096, "epoch": 0, "loss": loss,
           "perplexity": math.exp(loss) if loss is not None else None, "lr": 3e-4 * min(1, step / 10),
           "grad_norm": 1000.0 if step == 20 else 1.0 / step, "tokens_per_s": 50000 + 100 * step,
           "step_ms": 80.0, "skipped": False, "bad_steps": 0, "skipped_steps": 0,
           "mem_allocated_mib": 1024.0, "mem_peak_mib": 2048.0}
    rec.update(extra)
    return json.dumps(rec) + "\n"


def metrics_text():
    """50 steps, a resumed run re-doing steps 41-50 with other losses, skipped steps, valid loss every 10."""
    out = []
    for s in range(1, 51):
        extra = {"valid_loss": 4 * math.exp(-s / 20) + 0.3} if s % 10 == 0 else {}
        if s == 25:  # a non-finite loss: nlohmann::json writes null
            out.append(line(s, None, skipped=True, grad_norm=None, bad_steps=1, skipped_steps=1))
        elif s == 33:  # a loss spike, skipped but finite
            out.append(line(s, 9.0, skipped=True, bad_steps=2, skipped_steps=2))
        else:
            out.append(line(s, 4 * math.exp(-s / 15) + 0.2, **extra))
    out += [line(s, 2.0 - s / 100) for s in range(41, 51)]  # the resumed run
    return "".join(out)


def run(*args, env=None):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, env=env)


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
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

    def test_plot(self):
        text = metrics_text()
        src = self.write("metrics.jsonl", text)
        out = os.path.join(self.dir, "loss.png")
        r = run(src, "--out", out, "--smooth", "5", "--title", "synthetic run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertRegex(r.stdout, r"^plot_metrics: 50 steps \(1\.\.50\) -> " + re.escape(out) + r"\n$")
        with open(src) as f:
            self.assertEqual(f.read(), text)
        self.assertEqual(sorted(os.listdir(self.dir)), ["loss.png", "metrics.jsonl"])  # no temp file left
        with open(out, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

        img = mpimg.imread(out)
        self.assertEqual(img.shape[:2], (HEIGHT, WIDTH))
        rgb = img[..., :3]
        colored = rgb.max(axis=2) - rgb.min(axis=2) > 0.3  # data lines are colored; frames, text, grid are gray
        red = (rgb[..., 0] > 0.8) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)
        h, w = HEIGHT // 2, WIDTH // 2
        for name, (y, x) in {"loss": (0, 0), "lr": (0, w), "grad norm": (h, 0), "tokens/s": (h, w)}.items():
            self.assertGreater(colored[y:y + h, x:x + w].sum(), 200, f"{name} panel has no plotted data")
        self.assertGreater(red[:h, :w].sum(), 20, "no red x for skipped steps on the loss panel")

    def test_overwrite_existing_png(self):
        src = self.write("metrics.jsonl", metrics_text())
        out = self.write("old.png", "not a png")
        r = run(src, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


class Errors(Base):
    def check(self, text, *needles):
        src = self.write("metrics.jsonl", text)
        self.assert_error(run(src, "--out", os.path.join(self.dir, "loss.png")), *needles)
        with open(src) as f:
            self.assertEqual(f.read(), text)

    def test_missing_file(self):
        self.assert_error(run(os.path.join(self.dir, "nope.jsonl"), "--out", os.path.join(self.dir, "x.png")), "nope.jsonl")

    def test_empty_file(self):
        self.check("", "no metrics")

    def test_blank_lines_only(self):
        self.check("\n\n", "no metrics")

    def test_malformed_line(self):
        self.check(line(1, 3.0) + line(2, 2.9) + '{"step": 3, "loss": 2.\n' + line(4, 2.7), "line 3", "metrics_file")

    def test_not_an_object(self):
        self.check(line(1, 3.0) + "[1, 2]\n", "line 2")

    def test_missing_loss(self):
        self.check(line(1, 3.0) + json.dumps({"step": 2, "lr": 1e-4}) + "\n", "line 2", '"loss"')

    def test_missing_step(self):
        self.check(json.dumps({"loss": 3.0}) + "\n", "line 1", '"step"')

    def test_out_dir_missing(self):
        text = metrics_text()
        src = self.write("metrics.jsonl", text)
        missing = os.path.join(self.dir, "no", "such")
        self.assert_error(run(src, "--out", os.path.join(missing, "loss.png")), "output directory", missing)
        with open(src) as f:
            self.assertEqual(f.read(), text)

    def test_out_is_input(self):
        text = metrics_text()
        src = self.write("metrics.jsonl", text)
        self.assert_error(run(src, "--out", src), "metrics file itself")
        with open(src) as f:
            self.assertEqual(f.read(), text)

    def test_bad_option(self):
        src = self.write("metrics.jsonl", metrics_text())
        self.assert_error(run(src, "--smooth", "x"), "--smooth")

    def test_matplotlib_missing(self):
        # a matplotlib package that fails to import, found first on PYTHONPATH
        fake = os.path.join(self.dir, "fake", "matplotlib")
        os.makedirs(fake)
        self.write(os.path.join("fake", "matplotlib", "__init__.py"), "raise ImportError('no matplotlib here')\n")
        src = self.write("metrics.jsonl", metrics_text())
        env = dict(os.environ, PYTHONPATH=os.path.dirname(fake))
        self.assert_error(run(src, "--out", os.path.join(self.dir, "loss.png"), env=env),
                          "apt-get install python3-matplotlib")


if __name__ == "__main__":
    unittest.main(verbosity=2)
