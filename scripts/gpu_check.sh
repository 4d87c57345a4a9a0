#!/usr/bin/env bash
# On a machine with a GPU: the checks CI cannot run. Builds, runs the test suite, the CUDA backend's
# op and training tests on the real GPU (the same test source as the emulated kernel_tests), a
# short training on the GPU, and the kernel benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi -L
scripts/setup.sh
scripts/build.sh -DLLAMATRON_CUDA=ON
build/llamatron info
(cd build && ctest --output-on-failure)
build/tests/gpu_backend_tests
build/llamatron train configs/tiny.yaml --set train.device=cuda --set train.steps=20 --set train.log_every=5
build/benchmarks/bench_kernels
