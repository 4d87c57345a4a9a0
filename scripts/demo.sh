#!/usr/bin/env bash
# README command 1: installs what is missing, builds, prepares a small dataset (the licence texts
# every Debian machine ships), trains the tiny byte-level LLaMA of configs/tiny.yaml on CPU for
# about two minutes (a progress bar on a terminal), draws the loss curve to build/demo/loss.png and
# prints a sample from the trained model. Extra arguments go to `llamatron train`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
LLAMATRON_TARGETS=llamatron scripts/build.sh  # the CLI only: the tests and their sanitizer builds are scripts/test.sh's
demo=build/demo
rm -rf "$demo"  # the demo's own outputs only: a fresh run each time
mkdir -p "$demo/text"
for f in /usr/share/common-licenses/*; do  # regular files: the unversioned names are links to versions
  if [ -f "$f" ] && [ ! -L "$f" ]; then cp "$f" "$demo/text/$(basename "$f").txt"; fi
done
if [ -z "$(ls "$demo/text")" ]; then
  echo "demo: no texts in /usr/share/common-licenses to train on" >&2
  exit 1
fi
echo "== 1/4 prepare: byte-level tokens from $(ls "$demo/text" | wc -l) licence texts"
build/llamatron data prepare "$demo"/text/*.txt --out "$demo/data"
echo "== 2/4 train: configs/tiny.yaml on CPU (about two minutes)"
build/llamatron train configs/tiny.yaml "$@"
echo "== 3/4 plot: the loss curve"
/usr/bin/python3 tools/plot_metrics.py "$demo/metrics.jsonl" --out "$demo/loss.png" --title "llamatron demo: configs/tiny.yaml"
echo "== 4/4 generate: a sample from the trained model"
build/llamatron generate "$demo/ckpt" --prompt "This License" --max-new 200 --temperature 0.7 --top-k 40
