#!/usr/bin/env bash
# README command 2: installs what is missing, builds with warnings as errors, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh -DLLAMATRON_WERROR=ON
cd build
# Serially: each test already uses both cores (OpenMP), and two at once thrash each other.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --output-on-failure "$@"
