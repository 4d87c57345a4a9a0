#!/usr/bin/env bash
# Packs into .gpu/ what scripts/gpu_check.sh runs, for a GPU machine that can neither install
# packages nor build llamatron (no network, no Debian -dev packages): the CUDA binaries, built here
# for sm_80 and sm_90 with portable host code (no -march=native: that machine's CPU is not this
# one), and the Debian shared libraries they load. glibc, libstdc++ and the GPU stack (driver, CUDA
# runtime, cuBLASLt, NCCL) stay behind: the GPU machine's own are newer, and gpu_check.sh finds them.
# Then, on that machine: scripts/gpu_check.sh (it uses .gpu/ when it is there).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DLLAMATRON_CUDA=ON -DLLAMATRON_NATIVE=OFF >/dev/null
cmake --build build-gpu -j "${LLAMATRON_JOBS:-2}" --target llamatron gpu_backend_tests bench_kernels bench_attention

rm -rf .gpu
mkdir -p .gpu/bin .gpu/lib
cp build-gpu/llamatron build-gpu/tests/gpu_backend_tests build-gpu/benchmarks/bench_kernels \
   build-gpu/benchmarks/bench_attention .gpu/bin/
strip --strip-unneeded .gpu/bin/*
stays='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnccl)\.so'
for b in .gpu/bin/*; do ldd "$b"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    [[ $name =~ $stays ]] || cp -L "$path" .gpu/lib/
  done

# The device tool carries at most 64 MiB, the working tree included.
mib=$(du -sm .gpu | cut -f1)
if [ "$mib" -gt 60 ]; then
  echo "gpu_bundle: .gpu is ${mib} MiB, over the 60 MiB that fit beside the working tree in one carry" >&2
  exit 1
fi
echo "gpu_bundle: .gpu holds $(ls .gpu/bin | wc -l) binaries and $(ls .gpu/lib | wc -l) libraries, ${mib} MiB"
