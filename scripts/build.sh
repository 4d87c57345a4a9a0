#!/usr/bin/env bash
# Configures and builds into build/ (Release). Extra arguments go to cmake, e.g. -DLLAMATRON_CUDA=OFF;
# LLAMATRON_TARGETS (e.g. "llamatron") builds only those targets (default: everything, tests too).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
# shellcheck disable=SC2086  # a list of targets
cmake --build build -j "${LLAMATRON_JOBS:-2}" ${LLAMATRON_TARGETS:+--target $LLAMATRON_TARGETS}
