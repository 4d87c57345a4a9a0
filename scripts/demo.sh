#!/usr/bin/env bash
# README command 1: installs what is missing, builds, and trains a tiny LLaMA on CPU. The loss
# falls from log(256) = 5.5 towards the synthetic data's entropy floor, printed at the start.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/llamatron train configs/tiny.yaml "$@"
