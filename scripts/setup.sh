#!/usr/bin/env bash
# Installs every build and test dependency from Debian's packages. Idempotent: installs only what
# is missing, and runs apt-get update only then. Nothing is vendored or downloaded at build time.
set -euo pipefail

packages=(
  build-essential cmake git pkg-config
  libdnnl-dev                 # oneDNN: CPU GEMMs (AMX / AVX-512 bf16)
  ocl-icd-opencl-dev          # oneDNN's CMake config requires OpenCL; libdnnl-dev only recommends it
  libopenmpi-dev openmpi-bin  # the MPI communicator (#6)
  libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-dev       # libFuzzer with ASan + UBSan: the fuzz targets of the file parsers (tests/fuzz)
  python3 python3-torch python3-numpy  # the PyTorch reference the tests compare against
  libicu-dev libxxhash-dev libzstd-dev zlib1g-dev libsimdjson-dev  # data filter / dedup: Unicode, XXH3, .gz and .zst inputs, JSON lines
  zstd                        # tests: .jsonl.zst inputs
  python3-venv                # a venv for tools/prepare_hf.py (tokenizers, from PyPI)
  python3-matplotlib          # tools/plot_metrics.py: the loss curve PNG
  iproute2                    # ip / tc: the simulated hosts of tests/multinode (network namespaces)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all dependencies are installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
